"""The streaming analysis pipeline and its public entry point, :func:`analyze`.

    sources ──► frames ──► detect + track + crop ──► bounded queue ──► batcher ──► classifier ──► records
    (worker threads, one source at a time each)                       (the caller's thread)

Workers decode and detect ahead of classification through a bounded queue, so both stages run at once (OpenCV,
MediaPipe and TensorFlow release the GIL). Crops from many frames and files are grouped into batches for the CNN.
Nothing holds more than one frame per worker plus the queue and one batch, whatever the length of a video.
Records of one source always come out in frame order; with several workers, sources interleave.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import AnalyzeConfig
from .errors import FerBatchError, InputError
from .records import FaceRecord, SourceDone
from .sources import Source, discover, iter_frames, probe_video

log = logging.getLogger("fer_batch")


@dataclass(frozen=True)
class SourceStart:
    """A source begins; ``frames`` is the header's frame-count hint for videos (0 when unknown)."""

    source: str
    media: str
    frames: int = 0


@dataclass
class FrameItem:
    """One analysed frame on its way to classification: its detections, face ids and crops (not its pixels)."""

    source: Source
    frame: int
    time_s: float | None
    boxes: list[tuple[int, int, int, int]]
    scores: list[float]
    ids: list[int]
    crops: np.ndarray  # (k, 48, 48, 1) uint8
    probs: np.ndarray | None = None

    def records(self) -> list[FaceRecord]:
        base = dict(source=self.source.name, media=self.source.media, frame=self.frame, time_s=self.time_s)
        if not self.boxes:
            return [FaceRecord(**base)]
        return [
            FaceRecord(**base, face_id=fid, x=b[0], y=b[1], w=b[2], h=b[3], det_score=float(s),
                       probs=tuple(float(p) for p in pr))
            for fid, b, s, pr in zip(self.ids, self.boxes, self.scores, self.probs)
        ]


Event = FaceRecord | SourceStart | SourceDone


def frame_items(source: Source, config: AnalyzeConfig, detector) -> Iterator[FrameItem]:
    """Decode, detect, track and crop one source. Raises :class:`InputError` for unreadable media."""
    from .crops import align_faces
    from .track import FaceTracker

    tracker = FaceTracker() if source.media == "video" else None
    for frame in iter_frames(source, every=config.every, fps=config.fps, max_pixels=config.max_pixels):
        dets = [d for d in detector.detect(frame.rgb) if min(d.w, d.h) >= config.min_face]
        if tracker is None:
            dets.sort(key=lambda d: (d.x, d.y))  # photos: ids read left to right
            ids = list(range(len(dets)))
        else:
            ids = tracker.update([(d.x, d.y, d.w, d.h) for d in dets])
        boxes = [(int(round(d.x)), int(round(d.y)), int(round(d.w)), int(round(d.h))) for d in dets]
        yield FrameItem(source=source, frame=frame.index, time_s=frame.time_s, boxes=boxes,
                        scores=[d.score for d in dets], ids=ids, crops=align_faces(frame.rgb, dets))


def default_detector_factory(config: AnalyzeConfig):
    """A new :class:`~fer_batch.detect.FaceDetector` for ``config`` (one per worker thread)."""
    from .detect import FaceDetector

    return FaceDetector(config.detector, min_score=config.min_score, max_side=config.detect_max_side)


def _source_events(source: Source, config: AnalyzeConfig, detector) -> Iterator[FrameItem | SourceStart | SourceDone]:
    """All events of one source, ending with its SourceDone; never raises for bad media."""
    hint = probe_video(source).get("frames", 0) if source.media == "video" else 1
    yield SourceStart(source.name, source.media, max(hint, 0))
    frames = faces = 0
    error = None
    try:
        for item in frame_items(source, config, detector):
            frames += 1
            faces += len(item.boxes)
            yield item
    except InputError as exc:
        error = exc.reason
    except Exception as exc:  # a decoder or detector failure on odd input must not stop the batch
        log.debug("unexpected error on %s", source.name, exc_info=True)
        error = f"could not be analysed ({type(exc).__name__}: {exc})"
    yield SourceDone(source.name, source.media, frames=frames, faces=faces, error=error)


class _Stop(Exception):
    pass


@dataclass
class _Fatal:
    exc: BaseException


_END = object()


def _worker(jobs: "queue.Queue[Source | None]", out: queue.Queue, config: AnalyzeConfig, stop: threading.Event,
            make_detector):
    def put(item):
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    try:
        detector = make_detector(config)
        try:
            while not stop.is_set():
                source = jobs.get()
                if source is None:
                    break
                for event in _source_events(source, config, detector):
                    put(event)
        finally:
            detector.close()
        put(_END)
    except _Stop:
        pass
    except BaseException as exc:  # setup failures (detector model missing...) end the run, they are not per-file
        try:
            put(_Fatal(exc))
        except _Stop:
            pass


class _Batcher:
    """Groups crops across frames and files into batches, and releases events in arrival order once classified."""

    def __init__(self, classifier, batch_size: int, max_pending: int):
        self.classifier = classifier
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.pending: deque = deque()
        self.waiting_crops = 0

    def add(self, event) -> Iterator[Event]:
        self.pending.append(event)
        if isinstance(event, FrameItem):
            self.waiting_crops += len(event.crops)
        if self.waiting_crops >= self.batch_size or len(self.pending) >= self.max_pending:
            self._classify()
        yield from self._release()

    def finish(self) -> Iterator[Event]:
        self._classify()
        yield from self._release()

    def _classify(self) -> None:
        items = [e for e in self.pending if isinstance(e, FrameItem) and e.probs is None and len(e.crops)]
        if not items:
            return
        crops = np.concatenate([e.crops for e in items])
        probs = np.concatenate([self.classifier.predict(crops[i:i + self.batch_size])
                                for i in range(0, len(crops), self.batch_size)])
        at = 0
        for e in items:
            e.probs = probs[at:at + len(e.crops)]
            at += len(e.crops)
        self.waiting_crops = 0

    def _release(self) -> Iterator[Event]:
        while self.pending:
            head = self.pending[0]
            if isinstance(head, FrameItem):
                if len(head.crops) and head.probs is None:
                    return
                self.pending.popleft()
                yield from head.records()
            else:
                self.pending.popleft()
                yield head


def iter_events(paths: Iterable[str | Path] | None = None, config: AnalyzeConfig | None = None, *,
                sources: list[Source] | None = None, classifier=None, skip: set[str] | None = None,
                detector_factory=None) -> Iterator[Event]:
    """Every event of a run, in order: per source a SourceStart, its FaceRecords, then a SourceDone.

    ``sources`` may be given instead of ``paths`` (already discovered); ``skip`` names sources to leave out (used
    by ``--resume``). Files named explicitly that are not media give a SourceDone with an error and no rows.
    ``detector_factory(config)`` makes each worker's detector (default :func:`default_detector_factory`).
    """
    config = config or AnalyzeConfig()
    if sources is None:
        found = discover([str(p) for p in paths or ()])
        for name, reason in found.rejected:
            yield SourceDone(name, "", frames=0, faces=0, error=reason)
        sources = found.sources
    skip = skip or set()
    todo = [s for s in sources if s.name not in skip]
    if not todo:
        return
    if classifier is None:
        from .classify import Classifier

        classifier = Classifier(config.model)

    workers = min(config.workers, len(todo))
    jobs: queue.Queue = queue.Queue()
    for s in todo:
        jobs.put(s)
    for _ in range(workers):
        jobs.put(None)
    out: queue.Queue = queue.Queue(maxsize=config.queue_frames * workers)
    stop = threading.Event()
    threads = [threading.Thread(target=_worker, args=(jobs, out, config, stop, detector_factory or default_detector_factory), name=f"fer-batch-worker-{i}",
                                daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    batcher = _Batcher(classifier, config.batch_size, max_pending=max(config.batch_size, 4 * config.queue_frames))
    try:
        ended = 0
        while ended < workers:
            event = out.get()
            if event is _END:
                ended += 1
                continue
            if isinstance(event, _Fatal):
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

    ``paths`` are files and/or directories (walked recursively, sorted). Options are those of
    :class:`AnalyzeConfig` (``every``, ``fps``, ``batch_size``, ``model``, ``detector``, ``min_face``,
    ``min_score``, ...), given either as ``config`` or as keyword arguments. Frames without a face give one record
    with empty face fields. Files that cannot be analysed do not stop the run: their :class:`SourceDone` (with
    ``error`` set) is appended to ``errors`` when a list is given.

    Example::

        import fer_batch
        for rec in fer_batch.analyze(["clips/"], every=5):
            print(rec.source, rec.frame, rec.face_id, rec.emotion, rec.confidence)
    """
    if config is None:
        config = AnalyzeConfig(**options)
    elif options:
        raise FerBatchError("give either config or keyword options to analyze(), not both")
    for event in iter_events(paths, config, classifier=classifier):
        if isinstance(event, FaceRecord):
            yield event
        elif isinstance(event, SourceDone) and event.error and errors is not None:
            errors.append(event)


def analyze_source(path: str | Path, config: AnalyzeConfig | None = None, *, classifier=None, detector=None,
                   ) -> tuple[list[FaceRecord], SourceDone]:
    """Analyse one file without threads: its records and its SourceDone. The unit of work for distributed runs."""
    from .sources import media_kind

    config = config or AnalyzeConfig()
    path = Path(path)
    kind = media_kind(path)
    if kind is None:
        return [], SourceDone(str(path), "", 0, 0, error="not a supported image or video file")
    if classifier is None:
        from .classify import Classifier

        classifier = Classifier(config.model)
    own_detector = detector is None
    detector = detector or default_detector_factory(config)
    try:
        batcher = _Batcher(classifier, config.batch_size, max_pending=config.batch_size)
        records: list[FaceRecord] = []
        done = None
        for event in _source_events(Source(path, str(path), kind), config, detector):
            for out in batcher.add(event):
                if isinstance(out, FaceRecord):
                    records.append(out)
                elif isinstance(out, SourceDone):
                    done = out
        for out in batcher.finish():
            if isinstance(out, FaceRecord):
                records.append(out)
            elif isinstance(out, SourceDone):
                done = out
        return records, done
    finally:
        if own_detector:
            detector.close()
