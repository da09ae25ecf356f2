"""The streaming analysis pipeline and its public entry point, :func:`analyze`.

    sources ──► decode ──► detect + track + crop ──► bounded queue ──► batcher ──► classifier ──► records
    (per worker: a reader thread and a detector thread,            (the caller's thread)
     one source at a time each)

Each worker is two threads: a reader decodes its sources a few frames ahead (FFmpeg and PIL release the GIL), and
the worker detects, tracks and crops them; crops go through a bounded queue to the caller's thread, which groups
them across frames and files into batches for the CNN. OpenCV, MediaPipe and TensorFlow release the GIL, so all
stages run at once. Video frames stay in OpenCV's BGR order: only the reduced copy used for detection and the
48x48 crops are converted. Nothing holds more than a few frames per worker (the read-ahead buffer, at most
READ_AHEAD frames and READ_AHEAD_BYTES of them but always two, plus the frame being detected and the one being
decoded) plus the queue of crops and one batch, whatever the length of a video. Records of one source always come
out in frame order; with several workers, sources interleave.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import AnalyzeConfig, existing_paths
from .errors import FerBatchError, InputError
from .records import FaceRecord, SourceDone
from .sources import NO_TIMESTAMP_FPS, Source, discover, iter_frames, probe_video
from .threads import opencv_threads

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


def _frame_item(source: Source, frame, tracker, config: AnalyzeConfig, detector) -> FrameItem:
    """Detect, track and crop one decoded frame."""
    from .crops import align_faces
    from .detect import FaceDetector

    if frame.bgr is None:
        image, bgr = frame.rgb, False
    elif isinstance(detector, FaceDetector):  # ours converts only its reduced copy; crops warp from BGR
        image, bgr = frame.bgr, True
    else:  # a detector from a custom factory gets RGB, as documented
        import cv2

        image, bgr = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB), False
    found = detector.detect(image, bgr=True) if bgr else detector.detect(image)
    dets = [d for d in found if min(d.w, d.h) >= config.min_face]
    if tracker is None:
        dets.sort(key=lambda d: (d.x, d.y))  # photos: ids read left to right
        ids = list(range(len(dets)))
    else:
        # Without container timestamps, time as --fps counts it (index / 30 s) still spaces sparse samples apart.
        time_s = frame.time_s if frame.time_s is not None else frame.index / NO_TIMESTAMP_FPS
        ids = tracker.update([(d.x, d.y, d.w, d.h) for d in dets], time_s, getattr(detector, "thumbnail", None),
                             getattr(detector, "thumbnail_scale", 1.0))
        if tracker.cut:
            _reset(detector)  # a new shot: auto looks for small faces in it at once
    boxes = [(int(round(d.x)), int(round(d.y)), int(round(d.w)), int(round(d.h))) for d in dets]
    return FrameItem(source=source, frame=frame.index, time_s=frame.time_s, boxes=boxes,
                     scores=[d.score for d in dets], ids=ids, crops=align_faces(image, dets, bgr=bgr))


def _reset(detector) -> None:
    """A new source starts: a detector that keeps state between frames (``auto``) forgets it."""
    if hasattr(detector, "reset"):
        detector.reset()


def _new_tracker(source: Source):
    from .track import FaceTracker

    return FaceTracker() if source.media == "video" else None


def frame_items(source: Source, config: AnalyzeConfig, detector) -> Iterator[FrameItem]:
    """Decode, detect, track and crop one source. Raises :class:`InputError` for unreadable media."""
    tracker = _new_tracker(source)
    _reset(detector)
    for frame in iter_frames(source, every=config.every, fps=config.fps, max_pixels=config.max_pixels, bgr=True):
        yield _frame_item(source, frame, tracker, config, detector)


def default_detector_factory(config: AnalyzeConfig):
    """A new :class:`~fer_batch.detect.FaceDetector` for ``config`` (one per worker thread)."""
    from .detect import FaceDetector

    return FaceDetector(config.detector, min_score=config.min_score, max_side=config.detect_max_side)


def _source_hint(source: Source) -> int:
    return max(probe_video(source).get("frames", 0), 0) if source.media == "video" else 1


def _failure(source: Source, exc: Exception) -> str:
    """The error row for an unexpected exception: a decoder or detector failure on odd input must not stop a run."""
    log.debug("unexpected error on %s", source.name, exc_info=True)
    return f"could not be analysed ({type(exc).__name__}: {exc})"


def _source_events(source: Source, config: AnalyzeConfig, detector) -> Iterator[FrameItem | SourceStart | SourceDone]:
    """All events of one source, ending with its SourceDone; never raises for bad media. (No threads.)"""
    yield SourceStart(source.name, source.media, _source_hint(source))
    frames = faces = 0
    error = None
    try:
        for item in frame_items(source, config, detector):
            frames += 1
            faces += len(item.boxes)
            yield item
    except InputError as exc:
        error = exc.reason
        log.debug("%s: %s", source.name, exc.reason, exc_info=True)
    except Exception as exc:
        error = _failure(source, exc)
    yield SourceDone(source.name, source.media, frames=frames, faces=faces, error=error)


class _Stop(Exception):
    pass


@dataclass
class _Fatal:
    exc: BaseException


_END = object()
#: Decoded frames a worker's reader may hold ready beyond the one its detector is working on, at most, so that
#: decoding runs on through the detector's slower frames and the classifier's bursts instead of stopping. Measured
#: on 2-core machines, alternating in-process runs: 6 frames against 2 gave 205.9 against 195.7 frames/s on a
#: 10-s one-face 720p clip (AMD EPYC); 16 against 6 gave 311.4 against 299.0 frames/s on a 60-s one (Intel Xeon
#: with AMX; 16 was faster in each of five pairs; ``benchmarks/analyze_speed.py --base`` has the whole comparison).
READ_AHEAD = 16
#: ... and at most this many bytes of them (but always two frames): 16 frames of 720p BGR are 44 MB, while 16 of
#: 4K would be 400 MB; the bytes bound keeps 1080p at eight frames ahead (50 MB) and 4K at two (50 MB). With the
#: frame being detected and the one being decoded, a worker holds at most 59 MB of 1080p frames and 100 MB of 4K.
READ_AHEAD_BYTES = 48 * 2**20
_READ_AHEAD_MIN = 2


class _ReadAhead:
    """A worker's decoded frames waiting for its detector (and the reader's markers), bounded in number and bytes.

    :meth:`put` and :meth:`get` behave as :func:`_put` and :func:`_get` do on a queue: waiting while full or
    empty, and raising :class:`_Stop` instead once one of the given flags is set.
    """

    def __init__(self, max_items: int | None = None, max_bytes: int | None = None):
        self.max_items = READ_AHEAD if max_items is None else max_items
        self.max_bytes = READ_AHEAD_BYTES if max_bytes is None else max_bytes
        self._items: deque = deque()
        self._bytes = 0
        self._frames = 0  # items holding pixels
        self._changed = threading.Condition()

    def room_for(self, nbytes: int) -> bool:
        """Whether an item of ``nbytes`` may be added now (call with the lock held, or for a snapshot)."""
        if len(self._items) >= self.max_items:
            return False
        return nbytes == 0 or self._frames < _READ_AHEAD_MIN or self._bytes + nbytes <= self.max_bytes

    def put(self, item, *flags: threading.Event) -> None:
        nbytes = _pixel_bytes(item)
        with self._changed:
            while True:
                if any(f.is_set() for f in flags):
                    raise _Stop
                if self.room_for(nbytes):
                    break
                self._changed.wait(0.1)
            self._items.append((item, nbytes))
            self._bytes += nbytes
            self._frames += nbytes > 0
            self._changed.notify_all()

    def get(self, *flags: threading.Event):
        with self._changed:
            while not self._items:
                if any(f.is_set() for f in flags):
                    raise _Stop
                self._changed.wait(0.1)
            item, nbytes = self._items.popleft()
            self._bytes -= nbytes
            self._frames -= nbytes > 0
            self._changed.notify_all()
            return item


def _pixel_bytes(item) -> int:
    """Bytes of the pixels a decoded frame holds (0 for the reader's markers)."""
    pixels = getattr(item, "bgr", None)
    if pixels is None:
        pixels = getattr(item, "rgb", None)
    return 0 if pixels is None else int(pixels.nbytes)


@dataclass
class _Begin:
    """The reader starts a source."""

    source: Source
    hint: int


@dataclass
class _Ended:
    """The reader has finished a source; ``error`` when decoding failed (frames before it were delivered)."""

    error: str | None


def _put(q: queue.Queue, item, *flags: threading.Event) -> None:
    """Put, waiting while the queue is full, unless one of ``flags`` is set (then :class:`_Stop`)."""
    while not any(f.is_set() for f in flags):
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stop


def _get(q: queue.Queue, *flags: threading.Event):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if any(f.is_set() for f in flags):
                raise _Stop from None


class _Abandon:
    """The source a worker's detector gave up on, so that its reader stops decoding it."""

    source: Source | None = None


def _reader(jobs: queue.Queue, frames: _ReadAhead, config: AnalyzeConfig, abandon: _Abandon,
            *flags: threading.Event) -> None:
    """Decode one worker's sources, one after another, ahead of its detector: _Begin, Frames, _Ended per source.

    Decoding (FFmpeg, PIL) releases the GIL, so it overlaps detection; at most READ_AHEAD frames (and
    READ_AHEAD_BYTES of them) wait.
    """
    try:
        while True:
            source = jobs.get()
            if source is None:
                break
            frames.put(_Begin(source, _source_hint(source)), *flags)
            error = None
            it = iter_frames(source, every=config.every, fps=config.fps, max_pixels=config.max_pixels, bgr=True)
            try:
                for frame in it:
                    frames.put(frame, *flags)
                    frame = None  # not held while the next one decodes: the READ_AHEAD + 2 bound counts on it
                    if abandon.source is source:
                        break
            except _Stop:
                raise  # the run is stopping: not a failure of this file
            except InputError as exc:
                error = exc.reason
                log.debug("%s: %s", source.name, exc.reason, exc_info=True)
            except Exception as exc:
                error = _failure(source, exc)
            finally:
                it.close()
            frames.put(_Ended(error), *flags)
        frames.put(_END, *flags)
    except _Stop:
        pass
    except BaseException as exc:  # not a per-file failure: hand it to the worker, which ends the run
        try:
            frames.put(_Fatal(exc), *flags)
        except _Stop:
            pass


def _worker(jobs: "queue.Queue[Source | None]", out: queue.Queue, config: AnalyzeConfig, stop: threading.Event,
            make_detector):
    """Detect, track and crop the frames its reader thread decodes; events go to ``out`` in source order."""
    halt = threading.Event()  # this worker is finishing: its reader must stop too
    try:
        detector = make_detector(config)
        frames = _ReadAhead()
        abandon = _Abandon()
        reader = threading.Thread(target=_reader, args=(jobs, frames, config, abandon, stop, halt),
                                  name=threading.current_thread().name + "-reader", daemon=True)
        reader.start()
        try:
            source = tracker = error = None
            count = faces = 0
            while True:
                item = frames.get(stop)
                if item is _END:
                    break
                if isinstance(item, _Fatal):
                    raise item.exc
                if isinstance(item, _Begin):
                    source, tracker, error, count, faces = item.source, _new_tracker(item.source), None, 0, 0
                    _reset(detector)
                    _put(out, SourceStart(source.name, source.media, item.hint), stop)
                elif isinstance(item, _Ended):
                    _put(out, SourceDone(source.name, source.media, frames=count, faces=faces,
                                         error=error or item.error), stop)
                elif error is None:  # a frame; after a detector failure the rest of its source is skipped
                    try:
                        frame_item = _frame_item(source, item, tracker, config, detector)
                    except Exception as exc:
                        error = _failure(source, exc)
                        abandon.source = source
                        continue
                    item = None  # the frame's pixels are no longer needed; don't hold them while waiting
                    count += 1
                    faces += len(frame_item.boxes)
                    _put(out, frame_item, stop)
        finally:
            halt.set()
            reader.join()
            detector.close()
        _put(out, _END, stop)
    except _Stop:
        pass
    except BaseException as exc:  # setup failures (detector model missing...) end the run, they are not per-file
        try:
            _put(out, _Fatal(exc), stop)
        except _Stop:
            pass


class _Batcher:
    """Groups crops across frames and files into batches, and releases events in arrival order once classified.

    The i-th crop of a run (counting from ``start``) always sits at position ``i % batch_size`` of its network
    batch, however the batches happen to be cut (a full batch, or an early flush when ``max_pending`` events wait):
    a face's result then depends only on the face and its index in the run, and a resumed run that starts counting
    where the committed sources ended reproduces the uninterrupted run bit for bit (see :class:`Classifier`).
    """

    def __init__(self, classifier, batch_size: int, max_pending: int, start: int = 0):
        self.classifier = classifier
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.pending: deque = deque()
        self.waiting_crops = 0
        self.position = start % batch_size  # where the next crop goes in its network batch

    def add(self, event) -> Iterator[Event]:
        self.pending.append(event)
        if isinstance(event, FrameItem):
            self.waiting_crops += len(event.crops)
        if self.position + self.waiting_crops >= self.batch_size or len(self.pending) >= self.max_pending:
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
        probs = self.classifier.predict(crops, offset=self.position)  # fixed-size network batches, aligned
        at = 0
        for e in items:
            e.probs = probs[at:at + len(e.crops)]
            at += len(e.crops)
        self.waiting_crops = 0
        self.position = (self.position + len(crops)) % self.batch_size

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


def _network_batch_size(classifier, config: AnalyzeConfig) -> int:
    """The batch the classifier's network runs: crops are aligned to it (see :class:`_Batcher`)."""
    return getattr(classifier, "batch_size", config.batch_size)


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
    threads = [threading.Thread(target=_worker, args=(jobs, out, config, stop, make_detector),
                                name=f"fer-batch-worker-{i}", daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    batch_size = _network_batch_size(classifier, config)
    batcher = _Batcher(classifier, batch_size, max_pending=max(batch_size, 4 * config.queue_frames),
                       start=faces_before)
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
        config = AnalyzeConfig(**options)
    elif options:
        raise FerBatchError("give either config or keyword options to analyze(), not both")
    # Checked now, not at the first next(): a missing path is the CLI's usage error, before any model loads.
    return _records(existing_paths(paths), config, classifier, errors)


def _records(paths: tuple[str, ...], config: AnalyzeConfig, classifier, errors) -> Iterator[FaceRecord]:
    for event in iter_events(paths, config, classifier=classifier):
        if isinstance(event, FaceRecord):
            yield event
        elif isinstance(event, SourceDone) and event.error and errors is not None:
            errors.append(event)


def analyze_source(path: str | Path | Source, config: AnalyzeConfig | None = None, *, classifier=None,
                   detector=None) -> tuple[list[FaceRecord], SourceDone]:
    """Analyse one file without threads: its records and its SourceDone. The unit of work for distributed runs.

    ``path`` may be a :class:`~fer_batch.sources.Source` (from :func:`discover`), whose ``name`` then labels the rows.
    A path that does not exist raises :class:`~fer_batch.errors.UsageError`, as :func:`analyze` does; a file that
    cannot be analysed gives a SourceDone with its ``error``.
    """
    from .sources import media_kind

    config = config or AnalyzeConfig()
    if isinstance(path, Source):
        source = path
    else:
        (name,) = existing_paths(path)
        path = Path(name)
        kind = media_kind(path)
        if kind is None:
            return [], SourceDone(str(path), "", 0, 0, error="not a supported image or video file")
        source = Source(path, str(path), kind)
    if classifier is None:
        from .classify import Classifier

        classifier = Classifier(config.model, batch_size=config.batch_size, runtime=config.runtime)
    own_detector = detector is None
    detector = detector or default_detector_factory(config)
    try:
        with opencv_threads():
            return _one_source(source, config, classifier, detector)
    finally:
        if own_detector:
            detector.close()


def _one_source(source: Source, config: AnalyzeConfig, classifier, detector) -> tuple[list[FaceRecord], SourceDone]:
    """:func:`analyze_source`'s work: one source's events through a batcher, in this thread."""
    batch_size = _network_batch_size(classifier, config)
    batcher = _Batcher(classifier, batch_size, max_pending=batch_size)
    records: list[FaceRecord] = []
    done = None
    for event in _source_events(source, config, detector):
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
