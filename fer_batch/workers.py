"""The pipeline's worker threads: each decodes its sources a few frames ahead in a reader thread and detects,
tracks and crops them in its own (see :mod:`fer_batch.pipeline` for the whole flow and its memory bounds).

Decoding (FFmpeg, PIL) and detection (OpenCV, MediaPipe) release the GIL, so a worker's two threads and the
caller's classifier run at once. A file that fails becomes its ``SourceDone``'s error; anything else (a detector
that cannot be made, an interrupt) reaches the caller as :class:`Fatal` and ends the run.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .config import AnalyzeConfig
from .errors import InputError
from .records import SourceDone
from .sources import Source, iter_frames
from .stages import SourceStart, detect_frame, failure_reason, new_tracker, reset_detector, source_hint

log = logging.getLogger("fer_batch")


class _Stop(Exception):
    """The run is stopping (a flag was set) while a thread waited on a full or empty queue."""


@dataclass
class Fatal:
    """Not a per-file failure: the exception that ends the run, carried to the caller's thread."""

    exc: BaseException


#: A worker (or its reader) has no more sources.
END = object()
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

    :meth:`put` and :meth:`get` behave as :func:`_put` does on a queue: waiting while full (or empty), and raising
    :class:`_Stop` instead once one of the given flags is set.
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
    """The reader starts a source (``at``: when, for the --debug log's time of the source)."""

    source: Source
    hint: int
    at: float = field(default_factory=time.time)


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
            frames.put(_Begin(source, source_hint(source)), *flags)
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
                error = failure_reason(source, exc)
            finally:
                it.close()
            frames.put(_Ended(error), *flags)
        frames.put(END, *flags)
    except _Stop:
        pass
    except BaseException as exc:  # not a per-file failure: hand it to the worker, which ends the run
        try:
            frames.put(Fatal(exc), *flags)
        except _Stop:
            pass


def worker(jobs: "queue.Queue[Source | None]", out: queue.Queue, config: AnalyzeConfig, stop: threading.Event,
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
                if item is END:
                    break
                if isinstance(item, Fatal):
                    raise item.exc
                if isinstance(item, _Begin):
                    source, tracker, error, count, faces = item.source, new_tracker(item.source), None, 0, 0
                    reset_detector(detector)
                    _put(out, SourceStart(source.name, source.media, item.hint, at=item.at), stop)
                elif isinstance(item, _Ended):
                    _put(out, SourceDone(source.name, source.media, frames=count, faces=faces,
                                         error=error or item.error), stop)
                elif error is None:  # a frame; after a detector failure the rest of its source is skipped
                    try:
                        frame_item = detect_frame(source, item, tracker, config, detector)
                    except Exception as exc:
                        error = failure_reason(source, exc)
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
        _put(out, END, stop)
    except _Stop:
        pass
    except BaseException as exc:  # setup failures (detector model missing...) end the run, they are not per-file
        try:
            _put(out, Fatal(exc), stop)
        except _Stop:
            pass
