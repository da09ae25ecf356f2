"""A whole batch job: run the pipeline over the inputs and write the timeline and errors, the annotated copies,
then the summary, charts and report.

This is the one function the CLI calls (:func:`run_batch`); it knows nothing of argv, exit codes or terminals.
Progress is reported through an optional object with the :class:`Progress` methods.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .config import RunConfig
from .errors import Interrupted, OutputError, UsageError
from .pipeline import SourceStart, iter_events
from .records import FaceRecord, SourceDone
from .sources import Discovery, Source, discover
from .wording import count

log = logging.getLogger("fer_batch")
FLUSH_ROWS = 256
FEW_FACES = 0.05  # a video with a face in fewer of its analysed frames gets a note at the end of the run


def few_faces_hint(config) -> str:
    """What may find more faces, given the options used (an AnalyzeConfig)."""
    if config.min_face > 0:
        return f"--min-face {config.min_face} leaves out smaller faces; a lower value may help"
    if config.detector != "auto":
        return "--detector auto finds faces from about 24 px wide"
    if config.min_score > 0.5:
        return f"--min-score {config.min_score} leaves out less certain faces; the default 0.5 may help"
    return "faces narrower than about 24 px, or turned far from the camera, are not found"


class Progress:
    """What :func:`run_batch` tells as it goes. Subclass it and override the methods you need (here they do nothing);
    an object of your own with only some of them works too (the others are taken as doing nothing)."""

    def start(self, total_sources: int, already_done: int) -> None:
        """The run knows its sources: ``already_done`` of them were committed by the run it resumes."""

    def source_start(self, event: SourceStart) -> None:
        """A source begins (``event.frames``: what :class:`~fer_batch.stages.SourceStart` says it holds)."""

    def frames(self, n: int) -> None:
        """``n`` more frames of the current video were analysed."""

    def source_done(self, done: SourceDone) -> None:
        """A source is committed to the timeline (``done.error`` set where it failed)."""

    def close(self) -> None:
        """The run's analysis ended, however it ended."""

    def writing(self, option: str) -> None:
        """An output made from the finished timeline is being written: ``"--summary"``, ``"--charts"``,
        ``"--report"`` (after :meth:`close`; on a large archive each can take a while)."""


class _Partial(Progress):
    """A progress object of the caller's with some methods missing: its own are bound once, the rest do nothing."""

    def __init__(self, inner):
        for name in ("start", "source_start", "frames", "source_done", "close", "writing"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))


def _as_progress(progress) -> Progress | None:
    if isinstance(progress, type):  # the class itself: analysed everything, then failed at close()
        raise UsageError(f"progress= takes an object, got the class {progress.__name__}; give {progress.__name__}()")
    return progress if progress is None or isinstance(progress, Progress) else _Partial(progress)


@dataclass
class RunReport:
    """What a run did: counts of sources, the failures, and the files it wrote."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # already complete in the run being resumed
    skipped_failed: int = 0  # of those, how many had failed (their rows are in the errors CSV)
    retried: int = 0  # of succeeded + failed, how many had failed in the run being resumed (--retry-failed)
    gone_failed: int = 0  # failures in the output of files no longer among the inputs (their error rows stay)
    earlier: int = 0  # sources the output held when this run started (a resumed run's, after --retry-failed's cut)
    ignored: int = 0  # files inside directories that are not media by their suffix
    rows: int = 0  # rows this run added to the timeline (whole sources only: see RunWriter.close)
    errors: list[SourceDone] = field(default_factory=list)
    annotate_failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason): analysed, not drawn
    #: (source, what happened to its audio) for annotated copies that left the audio out, e.g. a codec MP4 cannot hold.
    annotate_notes: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, Path | list[Path]] = field(default_factory=dict)
    #: Sources where little was found: (source, analysed frames, frames with a face), under FEW_FACES of them.
    few_faces: list[tuple[str, int, int]] = field(default_factory=list)
    hint: str = ""  # the option that may help where little was found
    #: What ran the classifier in this process ("tflite, dynamic-int8"), where --runtime auto chose it; None with an
    #: engine (its workers choose: see ``engine``) or with nothing to classify.
    runtime: str | None = None
    engine: bool = False  # the sources ran on an engine (Ray), each worker with its own classifier
    #: Charts and annotated copies that an earlier run of the same timeline wrote and this one replaced or did not
    #: make (sources gone from the inputs, or failed now): removed (:mod:`~fer_batch.output_files`).
    removed: list[Path] = field(default_factory=list)

    def few_faces_lines(self) -> list[str]:
        return [f"note: {source}: a face in {found} of {frames} analysed frames ({found / frames:.1%}); {self.hint}"
                for source, frames, found in self.few_faces]

    @property
    def ok(self) -> bool:
        """No file of the whole output failed, counting those a resumed run skipped."""
        return self.failed == 0 and self.skipped_failed == 0 and self.gone_failed == 0

    def line(self) -> str:
        earlier = f"; {self.skipped_failed} of them failed" if self.skipped_failed else ""
        parts = [f"{self.succeeded} succeeded", f"{self.failed} failed",
                 f"{self.skipped} skipped (already done{earlier})"]
        if self.retried:  # among those that succeeded or failed
            parts.append(f"{count(self.retried, 'earlier failure', grouped=False)} retried")
        if self.gone_failed:
            parts.append(f"{count(self.gone_failed, 'earlier failure', grouped=False)} not among the inputs")
        if self.ignored:
            parts.append(f"{count(self.ignored, 'non-media file', grouped=False)} ignored")
        line = f"sources: {', '.join(parts)}; {count(self.rows, 'row', grouped=False)} written"
        if self.annotate_failures:
            copies = count(len(self.annotate_failures), "annotated copy", grouped=False, plural="annotated copies")
            line += f"; {copies} not written"
        return line


def _settings(config: RunConfig) -> dict:
    """The options a resumed run must share with the interrupted one for their output to be identical."""
    from .classify import flip_margin, resolve_model, tflite_quantization
    from .unsure_faces import NEAR_TIE

    a = config.analyze
    model = resolve_model(a.model)
    margin = flip_margin(model)
    return {"paths": list(config.paths), "every": a.every, "fps": a.fps, "model": str(model.resolve()),
            # By content: a model replaced by another of the same size (a new packaged fast) is another network.
            "model_sha256": _sha256(model), "detector": a.detector, "min_face": a.min_face,
            "min_score": a.min_score, "detect_max_side": a.detect_max_side, "max_pixels": a.max_pixels,
            "batch_size": a.batch_size, "runtime": a.runtime,
            # The card can ask TFLite for int8 weights: the same file then gives other probabilities.
            "tflite_quantization": tflite_quantization(model) if a.runtime != "keras" else None,
            "tflite_near_tie": NEAR_TIE if a.runtime != "keras" else None,
            # The card can also ask for a second, mirrored look at unsure faces. Present only when it does, so
            # that the journals of runs from before it existed still resume.
            **({"flip_margin": margin} if margin is not None else {}),
            **_detector_settings(a.detector)}


def _runtime_ran(classifier) -> str | None:
    """"tflite, dynamic-int8", "keras": what runs ``classifier`` (None for a caller's object that does not say)."""
    runtime = getattr(classifier, "runtime", None)
    if not isinstance(runtime, str):
        return None
    quantization = getattr(classifier, "quantization", None) if runtime == "tflite" else None
    return f"{runtime}, {quantization}" if quantization else runtime


@functools.lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    from .tflite_cache import file_sha256

    return file_sha256(path)


def _sha256(path: Path) -> str:
    st = path.stat()  # cached by size and date: a run asks for its settings more than once
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


def _report_settings(config: RunConfig, report: RunReport) -> dict:
    from .annotate import sampling_text
    from .classify import DEFAULT_MODEL

    a = config.analyze
    runtime = a.runtime
    if a.runtime == "auto" and report.runtime:
        runtime = f"{report.runtime} (chosen by auto)"
    elif a.runtime == "auto" and report.engine:  # each worker loads its own classifier: a GPU node chooses Keras
        runtime = "auto (chosen on each worker)"
    return {"inputs": list(config.paths), "timeline": str(config.out), "analysed": sampling_text(a.every, a.fps),
            "model": a.model or DEFAULT_MODEL, "runtime": runtime, "detector": a.detector,
            "min face": f"{a.min_face} px" if a.min_face else None, "min score": a.min_score,
            "detect size": a.detect_max_side, "workers": a.workers,
            "smoothing": f"{config.smooth:g} s" if config.smooth else None,
            "annotated copies": str(config.annotate) if config.annotate else None}


def _failures(errors_path: Path) -> list[tuple[str, str]]:
    """Every failure of the output (those of an interrupted run included), as the errors CSV lists them."""
    import csv

    with open(errors_path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return [(row[0], row[1]) for row in list(csv.reader(f))[1:] if len(row) >= 2]


@dataclass
class Plan:
    """What a run has to do, known before any model loads: the inputs found, and the sources a resumed run has
    already committed."""

    found: Discovery
    committed: dict[str, dict]

    @property
    def todo(self) -> list[Source]:
        """The media sources still to analyse: when there are none, no model is needed."""
        return [s for s in self.found.sources if s.name not in self.committed]


def plan_run(config: RunConfig) -> Plan:
    """Walk the inputs and, for ``resume``, read (only read) the journal and check the options match, so that
    everything that needs no model is settled before TensorFlow is imported: a named file that is not media or a
    finished run is reported in well under a second. :class:`~fer_batch.errors.UsageError` as :func:`run_batch`."""
    from .sinks import check_resumable, check_unlocked, read_journal

    check_unlocked(config.out)  # another run writing this --out is refused before any model loads
    committed: dict[str, dict] = {}
    if config.resume and config.out.exists():
        entries = read_journal(config.out, _settings(config))
        check_resumable(config.out, config.errors_path, entries)
        committed = {entry["source"]: entry for entry in entries[1:]
                     if not (config.retry_failed and entry.get("error"))}
    return Plan(_discover(config), committed)


def _discover(config: RunConfig):
    """The run's sources, without its own output folders; refuses an annotate folder that would overwrite one."""
    found = discover(config.paths, skip_dirs=(config.annotate, config.charts))
    if config.annotate is not None:
        from .annotate import check_not_over_inputs

        check_not_over_inputs(config.annotate, found.sources)
    return found


def _detector_settings(detector: str) -> dict:
    """``auto``'s own thresholds and schedule: a resumed run must find faces as the interrupted one did."""
    if detector != "auto":
        return {}
    from .detect_auto import PARAMETERS

    return {"auto_detector": PARAMETERS}


def run_batch(config: RunConfig, progress: Progress | None = None, classifier=None,
              detector_factory=None, stop: threading.Event | None = None, engine=None,
              plan: Plan | None = None) -> RunReport:
    """Analyse ``config.paths`` and write every output ``config`` asks for; returns a :class:`RunReport`.

    ``classifier`` (a loaded :class:`~fer_batch.classify.Classifier`) and ``detector_factory`` may be given to reuse
    a model across runs or to control how detectors are made; by default both come from ``config``.
    Setting ``stop`` (from a signal handler or another thread) ends the run at the next frame with
    :class:`~fer_batch.errors.Interrupted`; the files committed so far stay valid, and ``resume=True`` continues.
    ``engine`` runs the sources elsewhere (e.g. :class:`~fer_batch.engine_ray.RayEngine`): its ``events()`` takes
    :func:`~fer_batch.pipeline.iter_events`'s arguments plus ``stop``, and yields the same events in source order.
    ``plan`` (from :func:`plan_run` with the same ``config``) spares walking the inputs a second time.
    """
    from .classify import DEFAULT_MODEL, check_classifier
    from .sinks import RunWriter

    if not isinstance(config, RunConfig):
        raise UsageError(f"run_batch() takes a RunConfig, got {type(config).__name__}; e.g. "
                         "RunConfig(paths=('clips/',), out='results.csv', analyze=AnalyzeConfig(every=5))")
    # The journal and the report record config's model: a classifier of another would mix two networks' rows.
    check_classifier(classifier, config.analyze.model or DEFAULT_MODEL, config.analyze.runtime, "run_batch()")
    progress = _as_progress(progress)
    report = RunReport()
    found = plan.found if plan is not None else _discover(config)
    report.ignored = found.skipped
    names = [s.name for s in found.sources] + [name for name, _ in found.rejected]
    # --retry-failed: only failures still among the inputs (a file gone since keeps its error row)
    writer = RunWriter(config.out, config.errors_path, resume=config.resume, settings=_settings(config),
                       retry=frozenset(names) if config.retry_failed else frozenset())
    retrying = set(writer.retried)
    report.earlier = len(writer.committed)
    report.outputs["timeline"] = config.out
    report.outputs["errors"] = config.errors_path
    committed = set(writer.committed)
    done_before = [writer.committed[name] for name in names if name in committed]
    report.skipped = len(done_before)
    report.skipped_failed = sum(1 for entry in done_before if entry.get("error"))
    # A failed file deleted since keeps its error row: the exit code must still say that the output holds a failure.
    inputs = set(names)
    report.gone_failed = sum(1 for name, entry in writer.committed.items() if entry.get("error") and name not in inputs)
    buffer: list[FaceRecord] = []
    report.hint = few_faces_hint(config.analyze)
    face_frames: dict[str, tuple[int, int]] = {}  # source -> (last frame with a face, frames with a face)
    paths = {s.name: s.path for s in found.sources}
    annotator = None

    def annotate(name: str) -> None:
        entry = writer.committed[name]
        if annotator is not None and entry.get("frames") and name in paths:
            annotator.source_done(name, entry["media"], paths[name], writer.rows(name))

    started: dict[str, float] = {}

    def interrupted() -> Interrupted:
        return Interrupted(f"stopped before finishing; continue with --resume (output {config.out})")

    def finish(done: SourceDone):
        _, with_face = face_frames.pop(done.source, (-1, 0))
        if not done.error and done.media == "video" and done.frames and with_face < FEW_FACES * done.frames:
            report.few_faces.append((done.source, done.frames, with_face))
        writer.write(buffer)
        buffer.clear()
        seconds = time.time() - started.pop(done.source, time.time())
        log.debug("end %s: %d frames, %d faces, %.2f s%s", done.source, done.frames, done.faces, seconds,
                  f", error: {done.error}" if done.error else "")
        # Counted when committed, not when finished: with several workers a finished file can wait for the one
        # streaming into the timeline, and an interruption meanwhile leaves it to --resume.
        for committed_now in writer.commit(done):
            if committed_now.source in retrying:
                report.retried += 1
            if committed_now.error:
                report.failed += 1
                report.errors.append(committed_now)
                log.info("failed: %s: %s", committed_now.source, committed_now.error)
            else:
                report.succeeded += 1
        report.rows = writer.rows_committed
        for name in writer.committed_since():
            annotate(name)
        if progress:
            progress.source_done(done)

    finished = False
    try:  # from here on, whatever is raised, the writer is closed below
        if config.annotate is not None:
            from .annotate import AnnotateSink

            annotator = AnnotateSink(config.annotate, every=config.analyze.every, fps=config.analyze.fps, stop=stop,
                                     sources=[(s.name, s.media) for s in found.sources], timeline=config.out)
            report.outputs["annotate"] = annotator.written
            if not config.resume:  # the timeline starts again: so do its copies
                report.removed += annotator.remove_earlier()
        if progress:
            progress.start(len(found.sources) + len(found.rejected), report.skipped)
        if annotator is not None and config.resume:
            # A copy of a source not committed was drawn from rows no longer in the timeline (a failure taken out by
            # --retry-failed, now or by a run killed since): it goes, and is drawn again from the new rows.
            for source in found.sources:
                if source.name not in committed:
                    try:
                        annotator.path_for(source.name, source.media).unlink(missing_ok=True)
                    except OSError as exc:
                        annotator.failures.append((source.name, f"{type(exc).__name__}: {exc}"))
        if annotator is not None:  # a resumed run draws what the interrupted one committed but had not drawn
            for name in committed:
                entry = writer.committed[name]
                if name in paths and not annotator.exists(name, entry["media"]):
                    annotate(name)
        for name, reason in found.rejected:
            if name not in committed:
                finish(SourceDone(name, "", frames=0, faces=0, error=reason))
        current_frame = None
        # Committed sources are a prefix of the run with one worker (without --retry-failed, which takes some out);
        # their faces fix where the next face sits in its network batch (see batcher.Batcher).
        faces_before = sum(entry.get("faces", 0) for entry in writer.committed.values())
        if classifier is None and engine is None and any(s.name not in committed for s in found.sources):
            from .classify import Classifier

            # Loaded here rather than by iter_events, so that the report can say what `--runtime auto` chose.
            classifier = Classifier(config.analyze.model, batch_size=config.analyze.batch_size,
                                    runtime=config.analyze.runtime)
        report.runtime, report.engine = _runtime_ran(classifier), engine is not None
        events = iter_events if engine is None else functools.partial(engine.events, stop=stop)
        for event in events(config=config.analyze, sources=found.sources, skip=committed,
                            classifier=classifier, detector_factory=detector_factory, faces_before=faces_before):
            if stop is not None and stop.is_set():
                raise interrupted()
            if isinstance(event, FaceRecord):
                buffer.append(event)
                if event.face_id is not None:  # a source's records come in frame order
                    last, with_face = face_frames.get(event.source, (-1, 0))
                    if event.frame != last:
                        face_frames[event.source] = (event.frame, with_face + 1)
                key = (event.source, event.frame)
                if key != current_frame:
                    current_frame = key
                    if progress:
                        progress.frames(1)
                if len(buffer) >= FLUSH_ROWS:
                    writer.write(buffer)
                    buffer.clear()
            elif isinstance(event, SourceDone):
                finish(event)
            elif isinstance(event, SourceStart):
                started[event.source] = event.at
                hint = f", {event.frames} frames by its header" if event.media == "video" and event.frames else ""
                log.debug("start %s (%s%s)", event.source, event.media, hint)
                if progress:
                    progress.source_start(event)
        if engine is not None and stop is not None and stop.is_set():  # the engine ended early because of it
            raise interrupted()
        finished = True
    except Interrupted as exc:
        exc.report = report  # what was committed before the stop, for the CLI's last line
        raise
    except OutputError as exc:  # the timeline, its errors file or journal (RunWriter says which)
        exc.report = report
        raise
    finally:
        # Drops the rows of a source cut off mid-way, so the timeline holds report.rows rows. Locked still after a
        # whole run: another run must not rewrite the timeline that the summary, charts and report read.
        writer.close(keep_lock=finished)
        report.rows = writer.rows_committed
        if annotator is not None:
            report.annotate_failures = annotator.failures
            report.annotate_notes = annotator.audio_notes
        if progress:
            progress.close()

    try:
        if config.summary or config.charts or config.report:
            try:
                _write_after_run(config, report, paths, progress, stop)
            except (OutputError, Interrupted) as exc:
                exc.report = report
                raise
    finally:
        writer.release()
    return report


def _write_after_run(config: RunConfig, report: RunReport, paths: dict, progress: Progress | None,
                     stop: threading.Event | None) -> None:
    """The outputs made from the finished timeline: summary, charts, report. ``stop`` ends it (between outputs, and
    between the sources of the charts and the report) with :class:`Interrupted`: the timeline is complete. Each
    output reads the timeline one source at a time (:class:`~fer_batch.timeline.Timeline`): an archive's timeline
    may be larger than memory."""
    from .output_files import record, remove_earlier
    from .summary import save_summary, summarize
    from .timeline import Timeline

    def check(option: str) -> None:
        if stop is not None and stop.is_set():
            raise Interrupted(f"stopped while writing {option}; the timeline is complete: --resume writes the "
                              f"summary, charts and report (output {config.out})")

    def starting(option: str) -> None:
        check(option)
        if progress:
            progress.writing(option)

    timeline = Timeline.from_csv(config.out)
    if config.summary:
        starting("--summary")
        with _writing("--summary", config.summary):
            config.summary.parent.mkdir(parents=True, exist_ok=True)
            save_summary(summarize(timeline, smooth=config.smooth), config.summary)
        report.outputs["summary"] = config.summary
    if config.charts:
        from .charts import write_charts

        starting("--charts")
        with _writing("--charts", config.charts):
            written = write_charts(timeline, config.charts, smooth=config.smooth, between=lambda: check("--charts"),
                                   on_written=lambda path: record(config.charts, config.out, "charts", [path]))
            report.outputs["charts"] = written
            report.removed += remove_earlier(config.charts, config.out, "charts", keep=written)
    if config.report:
        from .report import write_report

        starting("--report")
        with _writing("--report", config.report):
            failures = _failures(config.errors_path)
            line = report.line()
            if report.earlier:  # a resumed run's own counts miss what the earlier run did: the page shows it all
                totals = timeline.totals()
                line = (f"the whole output: {count(totals.sources, 'source')} with results, "
                        f"{count(len(failures), 'failure')}, {count(totals.rows, 'row')} · this run (--resume): "
                        f"{line}")
            report.outputs["report"] = write_report(config.report, timeline, failures,
                                                    settings=_report_settings(config, report), line=line, paths=paths,
                                                    smooth=config.smooth, between=lambda: check("--report"))


@contextmanager
def _writing(option: str, path: Path):
    """An OSError while writing the output of ``option`` as an :class:`OutputError` naming it (the timeline is
    complete by then: ``--resume`` writes the rest again once the cause is fixed)."""
    try:
        yield
    except OSError as exc:
        raise OutputError(option, path, exc) from exc
