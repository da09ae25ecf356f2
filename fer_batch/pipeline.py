"""The streaming analysis pipeline and its public entry point, :func:`analyze`.

    sources ──► decode ──► detect + track + crop ──► bounded queue ──► batcher ──► classifier ──► records
    (per worker: a reader thread and a detector thread,            (the caller's thread)
     one source at a time each)

Each worker is two threads: a reader decodes its sources a few frames ahead (FFmpeg and PIL release the GIL), and
the worker detects, tracks and crops them; crops go through a bounded queue to the caller's thread, which groups
them across frames and files into batches for the CNN. OpenCV, MediaPipe and TensorFlow release the GIL, so all
stages run at once. Video frames stay in OpenCV's BGR order: only the reduced copy used for detection and the 48x48
crops are converted. Nothing holds more than a few frames per worker (the read-ahead buffer, at most
``workers.READ_AHEAD`` frames and ``workers.READ_AHEAD_BYTES`` of them but always two, plus the frame being detected and
the one being decoded) plus the queue of crops and one batch, whatever the length of a video. Records of one source
always come out in frame order; with several workers, sources interleave.

This module wires the stages and holds the public calls; the per-frame work (decode, detect, track, crop) is
:mod:`fer_batch.stages`, the worker threads and their read-ahead buffer :mod:`fer_batch.workers`, and the
batching of crops for the classifier :mod:`fer_batch.batcher`.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from .batcher import Batcher, network_batch_size
from .config import AnalyzeConfig, analyze_config, existing_paths
from .errors import FerBatchError
from .records import FaceRecord, SourceDone
from .sources import Source, discover
# FrameItem, SourceStart, Event, frame_items and default_detector_factory are part of this module's interface;
# they are bound here at import, so a test that swaps one patches it in stages (or workers), where it is read.
from .stages import Event, FrameItem, SourceStart, default_detector_factory, frame_items, source_events  # noqa: F401
from .threads import opencv_threads
from .workers import END, Fatal, worker


def iter_events(paths: Iterable[str | Path] | None = None, config: AnalyzeConfig | None = None, *,
                sources: list[Source] | None = None, classifier=None, skip: set[str] | None = None,
                detector_factory=None, faces_before: int = 0) -> Iterator[Event]:
    """Every event of a run, in order: per source a SourceStart, its FaceRecords, then a SourceDone.

    ``sources`` may be given instead of ``paths`` (already discovered); ``skip`` names sources to leave out (used
    by ``--resume``). Files named explicitly that are not media give a SourceDone with an error and no rows.
    ``detector_factory(config)`` makes each worker's detector (default :func:`default_detector_factory`).
    ``classifier`` is anything with ``predict(crops, offset=0)`` like :class:`~fer_batch.classify.Classifier`;
    when it has a ``batch_size``, crops are grouped by that rather than ``config.batch_size``.
    ``faces_before`` is how many faces the skipped sources held: with one worker, a resumed run then batches every
    face at the position it had in the uninterrupted run, so their probabilities agree bit for bit. (With several
    workers, sources interleave in the order they finish decoding, so positions, and the last float32 bit of a
    probability, can differ between any two runs.)
    """
    config = config or AnalyzeConfig()
    if sources is None:
        found = discover(paths)
        for name, reason in found.rejected:
            yield SourceDone(name, "", frames=0, faces=0, error=reason)
        sources = found.sources
    skip = skip or set()
    todo = [s for s in sources if s.name not in skip]
    if not todo:
        return
    if classifier is None:
        from .classify import Classifier

        classifier = Classifier(config.model, batch_size=config.batch_size, runtime=config.runtime)

    with opencv_threads():
        yield from _run_workers(todo, config, classifier, detector_factory, faces_before)


def _run_workers(todo: list[Source], config: AnalyzeConfig, classifier, detector_factory,
                 faces_before: int) -> Iterator[Event]:
    """iter_events' worker threads and batcher, for the sources ``todo``."""
    workers = min(config.workers, len(todo))
    jobs: queue.Queue = queue.Queue()
    for s in todo:
        jobs.put(s)
    for _ in range(workers):
        jobs.put(None)
    out: queue.Queue = queue.Queue(maxsize=config.queue_frames * workers)
    stop = threading.Event()
    make_detector = detector_factory or default_detector_factory
    threads = [threading.Thread(target=worker, args=(jobs, out, config, stop, make_detector),
                                name=f"fer-batch-worker-{i}", daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    batch_size = network_batch_size(classifier, config)
    batcher = Batcher(classifier, batch_size, max_pending=max(batch_size, 4 * config.queue_frames),
                      start=faces_before)
    try:
        ended = 0
        while ended < workers:
            event = out.get()
            if event is END:
                ended += 1
                continue
            if isinstance(event, Fatal):
                raise event.exc
            yield from batcher.add(event)
        yield from batcher.finish()
    finally:
        stop.set()
        while any(t.is_alive() for t in threads):
            try:  # unblock workers waiting on a full queue
                while True:
                    out.get_nowait()
            except queue.Empty:
                pass
            for t in threads:
                t.join(timeout=0.05)


def analyze(paths: Iterable[str | Path], config: AnalyzeConfig | None = None, *, classifier=None,
            errors: list[SourceDone] | None = None, **options) -> Iterator[FaceRecord]:
    """Analyse images and videos; yield one :class:`FaceRecord` per face per analysed frame.

    ``paths`` are files and/or directories (walked recursively, sorted); one path may be given on its own, as a
    ``str`` or :class:`~pathlib.Path`. Options are those of
    :class:`AnalyzeConfig` (``every``, ``fps``, ``batch_size``, ``model``, ``detector``, ``min_face``,
    ``min_score``, ...), given either as ``config`` or as keyword arguments. Frames without a face give one record
    with empty face fields. A path that does not exist raises :class:`~fer_batch.errors.UsageError` at the call,
    as in the CLI. Files that cannot be analysed do not stop the run: their :class:`SourceDone` (with ``error``
    set) is appended to ``errors`` when a list is given.

    Example::

        import fer_batch
        for rec in fer_batch.analyze(["clips/"], every=5):
            print(rec.source, rec.frame, rec.face_id, rec.emotion, rec.confidence)
    """
    if config is None:
        config = analyze_config(**options)
    elif options:
        raise FerBatchError("give either config or keyword options to analyze(), not both")
    elif not isinstance(config, AnalyzeConfig):
        raise FerBatchError(f"analyze(config=...) takes an AnalyzeConfig, got {type(config).__name__}; e.g. "
                            "config=AnalyzeConfig(every=5), or the options as keywords: analyze(paths, every=5)")
    if errors is not None and not hasattr(errors, "append"):  # else an AttributeError at the first failed file
        raise FerBatchError(f"analyze(errors=...) takes a list to append failures to, got {type(errors).__name__}")
    # Checked now, not at the first next(): a missing path is the CLI's usage error, before any model loads.
    found = existing_paths(paths)
    # Given in a config, a batch_size other than the default is as much a request as the keyword. (stream_source
    # is another matter: it runs the classifier's batch whatever the config says, as the Ray engine's workers do.)
    default = AnalyzeConfig.__dataclass_fields__["batch_size"].default
    _check_model(config, classifier, batch_size_given="batch_size" in options or config.batch_size != default)
    return _records(found, config, classifier, errors)


def _check_model(config: AnalyzeConfig, classifier, batch_size_given: bool, where: str = "analyze()") -> None:
    """A wrong model name fails at the call, as a missing path does; so do a ``model`` or ``runtime`` that the
    classifier given does not run, and a ``batch_size`` that it would override (its network runs its own batch:
    records would come a batch of 256 faces at a time)."""
    from .classify import check_classifier, resolve_model
    from .errors import UsageError

    if classifier is None:
        resolve_model(config.model)
        return
    check_classifier(classifier, config.model, config.runtime, where)
    runs = getattr(classifier, "batch_size", None)
    if batch_size_given and runs is not None and runs != config.batch_size:
        raise UsageError(f"batch_size={config.batch_size}, but the classifier given runs batches of {runs}; make "
                         f"it with fer_batch.load_model(..., batch_size={config.batch_size}), or leave batch_size out")


def _records(paths: tuple[str, ...], config: AnalyzeConfig, classifier, errors) -> Iterator[FaceRecord]:
    for event in iter_events(paths, config, classifier=classifier):
        if isinstance(event, FaceRecord):
            yield event
        elif isinstance(event, SourceDone) and event.error and errors is not None:
            errors.append(event)


def analyze_source(path: str | Path | Source, config: AnalyzeConfig | None = None, *, classifier=None,
                   detector=None) -> tuple[list[FaceRecord], SourceDone]:
    """Analyse one file without threads: its records and its SourceDone (:func:`stream_source` gives them as they
    are classified, for a video too long to hold its rows).

    ``path`` may be a :class:`~fer_batch.sources.Source` (from :func:`discover`), whose ``name`` then labels the rows.
    A path that does not exist raises :class:`~fer_batch.errors.UsageError`, as :func:`analyze` does; a file that
    cannot be analysed gives a SourceDone with its ``error``.
    """
    records: list[FaceRecord] = []
    done = None
    events = stream_source(path, config, classifier=classifier, detector=detector)  # checks its arguments now
    for event in events:
        if isinstance(event, FaceRecord):
            records.append(event)
        elif isinstance(event, SourceDone):
            done = event
    return records, done


def stream_source(path: str | Path | Source, config: AnalyzeConfig | None = None, *, classifier=None,
                  detector=None) -> Iterator[Event]:
    """Analyse one file without threads, as it goes: its SourceStart, its FaceRecords a network batch at a time,
    then its SourceDone, so that memory stays about one frame and one batch however long the video. The unit of work
    of distributed runs (:mod:`fer_batch.engine_ray`). Arguments as :func:`analyze_source`'s (a missing path raises
    at the call); a file that is not media gives its SourceDone alone, as in :func:`iter_events`.
    """
    from .errors import UsageError
    from .sources import frames_kind, media_kind, not_media_reason

    config = AnalyzeConfig() if config is None else config
    if not isinstance(config, AnalyzeConfig):
        raise UsageError(f"stream_source(config=...) takes an AnalyzeConfig, got {type(config).__name__}; e.g. "
                         "AnalyzeConfig(every=5)")
    # At the call, as analyze() checks them: a wrong model name, and a classifier of another model than config's.
    _check_model(config, classifier, batch_size_given=False, where="stream_source()")
    if isinstance(path, Source):
        return _stream_source(path, config, classifier, detector)
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"stream_source() and analyze_source() take one file, got {type(path).__name__} "
                         f"{str(path)[:60]!r}; analyze() and run_batch() take several")
    (name,) = existing_paths(path)
    file = Path(name)
    if file.is_dir():
        raise UsageError(f"{name!r} is a folder; analyze_source and stream_source take one file (analyze() and "
                         "run_batch walk folders)")
    kind = media_kind(file)
    if kind is None:
        return iter([SourceDone(str(file), "", 0, 0, error=not_media_reason(file))])
    return _stream_source(Source(file, str(file), frames_kind(file, kind)), config, classifier, detector)


def _stream_source(source: Source, config: AnalyzeConfig, classifier, detector) -> Iterator[Event]:
    if classifier is None:
        from .classify import Classifier

        classifier = Classifier(config.model, batch_size=config.batch_size, runtime=config.runtime)
    own_detector = detector is None
    detector = detector or default_detector_factory(config)
    batch_size = network_batch_size(classifier, config)
    batcher = Batcher(classifier, batch_size, max_pending=batch_size)
    try:
        with opencv_threads():
            for event in source_events(source, config, detector):
                yield from batcher.add(event)
            yield from batcher.finish()
    finally:
        if own_detector:
            detector.close()
