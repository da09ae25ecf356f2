"""A whole batch job: run the pipeline over the inputs and write the timeline, errors, summary and charts.

This is the one function the CLI calls (:func:`run_batch`); it knows nothing of argv, exit codes or terminals.
Progress is reported through an optional object with the :class:`Progress` methods.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .config import RunConfig
from .errors import Interrupted
from .pipeline import SourceStart, iter_events
from .records import FaceRecord, SourceDone
from .sources import discover

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


class Progress(Protocol):
    def start(self, total_sources: int, already_done: int) -> None: ...
    def source_start(self, event: SourceStart) -> None: ...
    def frames(self, n: int) -> None: ...
    def source_done(self, done: SourceDone) -> None: ...
    def close(self) -> None: ...


@dataclass
class RunReport:
    """What a run did: counts of sources, the failures, and the files it wrote."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # already complete in the run being resumed
    skipped_failed: int = 0  # of those, how many had failed (their rows are in the errors CSV)
    ignored: int = 0  # files inside directories that are not media by their suffix
    rows: int = 0
    errors: list[SourceDone] = field(default_factory=list)
    outputs: dict[str, Path | list[Path]] = field(default_factory=dict)
    #: Sources where little was found: (source, analysed frames, frames with a face), under FEW_FACES of them.
    few_faces: list[tuple[str, int, int]] = field(default_factory=list)
    hint: str = ""  # the option that may help where little was found

    def few_faces_lines(self) -> list[str]:
        return [f"note: {source}: a face in {found} of {frames} analysed frames ({found / frames:.1%}); {self.hint}"
                for source, frames, found in self.few_faces]

    @property
    def ok(self) -> bool:
        """No file of the whole output failed, counting those a resumed run skipped."""
        return self.failed == 0 and self.skipped_failed == 0

    def line(self) -> str:
        earlier = f"; {self.skipped_failed} of them failed" if self.skipped_failed else ""
        parts = [f"{self.succeeded} succeeded", f"{self.failed} failed",
                 f"{self.skipped} skipped (already done{earlier})"]
        if self.ignored:
            parts.append(f"{self.ignored} non-media files ignored")
        return f"sources: {', '.join(parts)}; {self.rows} rows written"


def _settings(config: RunConfig) -> dict:
    """The options a resumed run must share with the interrupted one for their output to be identical."""
    from .classify import resolve_model

    a = config.analyze
    model = resolve_model(a.model)
    return {"paths": list(config.paths), "every": a.every, "fps": a.fps, "model": str(model.resolve()),
            "model_bytes": model.stat().st_size, "detector": a.detector, "min_face": a.min_face,
            "min_score": a.min_score, "detect_max_side": a.detect_max_side, "max_pixels": a.max_pixels,
            "batch_size": a.batch_size, "runtime": a.runtime, **_detector_settings(a.detector)}


def _detector_settings(detector: str) -> dict:
    """``auto``'s own thresholds and schedule: a resumed run must find faces as the interrupted one did."""
    if detector != "auto":
        return {}
    from .detect_auto import PARAMETERS

    return {"auto_detector": PARAMETERS}


def run_batch(config: RunConfig, progress: Progress | None = None, classifier=None,
              detector_factory=None, stop: threading.Event | None = None) -> RunReport:
    """Analyse ``config.paths`` and write every output ``config`` asks for; returns a :class:`RunReport`.

    ``classifier`` (a loaded :class:`~fer_batch.classify.Classifier`) and ``detector_factory`` may be given to reuse
    a model across runs or to control how detectors are made; by default both come from ``config``.
    Setting ``stop`` (from a signal handler or another thread) ends the run at the next frame with
    :class:`~fer_batch.errors.Interrupted`; the files committed so far stay valid, and ``resume=True`` continues.
    """
    from .sinks import RunWriter

    report = RunReport()
    found = discover(config.paths)
    report.ignored = found.skipped
    writer = RunWriter(config.out, config.errors_path, resume=config.resume, settings=_settings(config))
    report.outputs["timeline"] = config.out
    report.outputs["errors"] = config.errors_path
    committed = set(writer.committed)
    names = [s.name for s in found.sources] + [name for name, _ in found.rejected]
    done_before = [writer.committed[name] for name in names if name in committed]
    report.skipped = len(done_before)
    report.skipped_failed = sum(1 for entry in done_before if entry.get("error"))
    if progress:
        progress.start(len(found.sources) + len(found.rejected), report.skipped)
    buffer: list[FaceRecord] = []
    report.hint = few_faces_hint(config.analyze)
    face_frames: dict[str, tuple[int, int]] = {}  # source -> (last frame with a face, frames with a face)

    def finish(done: SourceDone):
        last, found = face_frames.pop(done.source, (-1, 0))
        if not done.error and done.media == "video" and done.frames and found < FEW_FACES * done.frames:
            report.few_faces.append((done.source, done.frames, found))
        writer.write(buffer)
        buffer.clear()
        writer.commit(done)
        if done.error:
            report.failed += 1
            report.errors.append(done)
            log.info("failed: %s: %s", done.source, done.error)
        else:
            report.succeeded += 1
        if progress:
            progress.source_done(done)

    try:
        for name, reason in found.rejected:
            if name not in committed:
                finish(SourceDone(name, "", frames=0, faces=0, error=reason))
        current_frame = None
        # Committed sources are always a prefix of the run with one worker; their faces fix where the next face
        # sits in its network batch (see pipeline._Batcher).
        faces_before = sum(entry.get("faces", 0) for entry in writer.committed.values())
        for event in iter_events(config=config.analyze, sources=found.sources, skip=committed,
                                 classifier=classifier, detector_factory=detector_factory,
                                 faces_before=faces_before):
            if stop is not None and stop.is_set():
                raise Interrupted(f"stopped before finishing; continue with --resume (output {config.out})")
            if isinstance(event, FaceRecord):
                buffer.append(event)
                report.rows += 1
                if event.face_id is not None:  # a source's records come in frame order
                    last, found = face_frames.get(event.source, (-1, 0))
                    if event.frame != last:
                        face_frames[event.source] = (event.frame, found + 1)
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
                if progress:
                    progress.source_start(event)
    except Interrupted as exc:
        exc.report = report  # what was committed before the stop, for the CLI's last line
        raise
    finally:
        writer.close()
        if progress:
            progress.close()

    if config.summary or config.charts:
        from .summary import read_timeline, save_summary, summarize

        timeline = read_timeline(config.out)
        if config.summary:
            config.summary.parent.mkdir(parents=True, exist_ok=True)
            save_summary(summarize(timeline, smooth=config.smooth), config.summary)
            report.outputs["summary"] = config.summary
        if config.charts:
            from .charts import write_charts

            report.outputs["charts"] = write_charts(timeline, config.charts, smooth=config.smooth)
    return report
