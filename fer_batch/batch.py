"""A whole batch job: run the pipeline over the inputs and write the timeline, errors, summary and charts.

This is the one function the CLI calls (:func:`run_batch`); it knows nothing of argv, exit codes or terminals.
Progress is reported through an optional object with the :class:`Progress` methods.
"""

from __future__ import annotations

import functools
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
            "batch_size": a.batch_size, "runtime": a.runtime}


def run_batch(config: RunConfig, progress: Progress | None = None, classifier=None,
              detector_factory=None, stop: threading.Event | None = None, engine=None) -> RunReport:
    """Analyse ``config.paths`` and write every output ``config`` asks for; returns a :class:`RunReport`.

    ``classifier`` (a loaded :class:`~fer_batch.classify.Classifier`) and ``detector_factory`` may be given to reuse
    a model across runs or to control how detectors are made; by default both come from ``config``.
    Setting ``stop`` (from a signal handler or another thread) ends the run at the next frame with
    :class:`~fer_batch.errors.Interrupted`; the files committed so far stay valid, and ``resume=True`` continues.
    ``engine`` runs the sources elsewhere (e.g. :class:`~fer_batch.engine_ray.RayEngine`): its ``events()`` takes
    :func:`~fer_batch.pipeline.iter_events`'s arguments plus ``stop``, and yields the same events in source order.
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

    def interrupted() -> Interrupted:
        return Interrupted(f"stopped before finishing; continue with --resume (output {config.out})")

    def finish(done: SourceDone):
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
        events = iter_events if engine is None else functools.partial(engine.events, stop=stop)
        for event in events(config=config.analyze, sources=found.sources, skip=committed,
                            classifier=classifier, detector_factory=detector_factory, faces_before=faces_before):
            if stop is not None and stop.is_set():
                raise interrupted()
            if isinstance(event, FaceRecord):
                buffer.append(event)
                report.rows += 1
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
        if engine is not None and stop is not None and stop.is_set():  # the engine ended early because of it
            raise interrupted()
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
