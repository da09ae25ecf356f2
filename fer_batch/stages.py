"""One source, frame by frame: decode, detect, track and crop, into :class:`FrameItem` events.

These are the pipeline's per-frame stages without threads; :mod:`fer_batch.workers` runs them on worker threads
and :func:`fer_batch.pipeline.analyze_source` in the caller's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .config import AnalyzeConfig
from .errors import InputError
from .records import FaceRecord, SourceDone
from .sources import NO_TIMESTAMP_FPS, Source, iter_frames, probe_video

log = logging.getLogger("fer_batch")


@dataclass(frozen=True)
class SourceStart:
    """A source begins; ``frames`` is how many frames it is expected to give: 1 for a photo, a video header's
    count (0 when unknown)."""

    source: str
    media: str
    frames: int = 0
    #: When decoding began (wall clock, so that a Ray worker's time compares with the driver's): the event reaches
    #: the run only when the batcher releases it, with the source's first batch of faces, often at its end. Not in
    #: the repr: a Ray task retried after a kill must send the events it sent before (engine_ray digests their reprs).
    at: float = field(default_factory=time.time, compare=False, repr=False)


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


def detect_frame(source: Source, frame, tracker, config: AnalyzeConfig, detector) -> FrameItem:
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
            reset_detector(detector)  # a new shot: auto looks for small faces in it at once
    boxes = [(int(round(d.x)), int(round(d.y)), int(round(d.w)), int(round(d.h))) for d in dets]
    return FrameItem(source=source, frame=frame.index, time_s=frame.time_s, boxes=boxes,
                     scores=[d.score for d in dets], ids=ids, crops=align_faces(image, dets, bgr=bgr))


def reset_detector(detector) -> None:
    """A new source starts: a detector that keeps state between frames (``auto``) forgets it."""
    if hasattr(detector, "reset"):
        detector.reset()


def new_tracker(source: Source):
    from .track import FaceTracker

    return FaceTracker() if source.media == "video" else None


def frame_items(source: Source, config: AnalyzeConfig, detector) -> Iterator[FrameItem]:
    """Decode, detect, track and crop one source. Raises :class:`InputError` for unreadable media."""
    tracker = new_tracker(source)
    reset_detector(detector)
    for frame in iter_frames(source, every=config.every, fps=config.fps, max_pixels=config.max_pixels, bgr=True):
        yield detect_frame(source, frame, tracker, config, detector)


def default_detector_factory(config: AnalyzeConfig):
    """A new :class:`~fer_batch.detect.FaceDetector` for ``config`` (one per worker thread)."""
    from .detect import FaceDetector

    return FaceDetector(config.detector, min_score=config.min_score, max_side=config.detect_max_side)


def source_hint(source: Source) -> int:
    """Frames a progress bar expects of ``source``: a video's header count, 0 where it cannot be read (the
    decoding that follows reports why, as an error row; a hint must never stop the batch)."""
    if source.media != "video":
        return 1
    try:
        return max(probe_video(source).get("frames", 0), 0)
    except Exception:  # noqa: BLE001 - any failure here is the decoder's to report
        log.debug("no frame count for %s", source.name, exc_info=True)
        return 0


def failure_reason(source: Source, exc: Exception) -> str:
    """The error row for an unexpected exception: a decoder or detector failure on odd input must not stop a run."""
    log.debug("unexpected error on %s", source.name, exc_info=True)
    return f"could not be analysed ({type(exc).__name__}: {exc})"


def source_events(source: Source, config: AnalyzeConfig, detector) -> Iterator[FrameItem | SourceStart | SourceDone]:
    """All events of one source, ending with its SourceDone; never raises for bad media. (No threads.)"""
    yield SourceStart(source.name, source.media, source_hint(source))
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
        error = failure_reason(source, exc)
    yield SourceDone(source.name, source.media, frames=frames, faces=faces, error=error)
