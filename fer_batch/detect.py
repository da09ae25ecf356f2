"""Face detection with MediaPipe BlazeFace, from the models bundled in the mediapipe wheel (nothing downloaded).

``auto`` (the default) combines both models so that faces from about 24 px wide to frame-filling are found
(:mod:`fer_batch.detect_auto`); ``short`` runs the short-range model through the MediaPipe Tasks API; ``full`` runs the full-range model through
the legacy ``mp.solutions.face_detection`` graph (the Tasks detector rejects the full-range model's anchors).
mediapipe is imported only when a detector is made, so importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError, UsageError

from .config import DETECTORS  # noqa: F401 (defined once, with the options; re-exported here)
_MODEL_FILES = {"short": "face_detection_short_range.tflite", "full": "face_detection_full_range_sparse.tflite"}
# BlazeFace sees a 128 or 192 px input whatever the frame size, so reducing large frames first only saves
# MediaPipe's own copy and resize (training/crop_calibration.md: 3.6 -> 3.5 ms at 720p, 9.3 -> 7.1 ms at 4K).
DEFAULT_MAX_SIDE = 640


@dataclass(frozen=True)
class Detection:
    """A face: box (pixels of the original frame, clipped to it), score, and six keypoints.

    ``keypoints`` is float32 (6, 2), pixel coordinates in the original frame (not clipped), in MediaPipe's order:
    right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion ("right" is the subject's
    right, on the left of the image).
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: np.ndarray


def bundled_model_path(model: str) -> Path:
    """Path of a detector's model file (``short`` or ``full``) inside the installed mediapipe wheel;
    :class:`ModelError` if it is missing."""
    if model not in _MODEL_FILES:
        raise UsageError(f"model {model!r} has no file of its own; choose one of {', '.join(_MODEL_FILES)} (auto "
                         "runs both)")
    try:
        import mediapipe
    except ImportError as exc:
        raise ModelError(f"mediapipe cannot be imported ({exc}); install the pinned mediapipe==0.10.21") from exc
    path = Path(mediapipe.__file__).parent / "modules" / "face_detection" / _MODEL_FILES[model]
    if not path.is_file():
        raise ModelError(f"the BlazeFace model {path} is missing from the mediapipe wheel "
                         "(mediapipe==0.10.21 bundles it)")
    return path


class _ShortRange:
    """The short-range model through the MediaPipe Tasks API: ``find(rgb)`` -> (x, y, w, h, score, keypoints) in
    ``rgb``'s pixels."""

    def __init__(self, min_score: float):
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(bundled_model_path("short"))),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=min_score,
        )
        self._impl = vision.FaceDetector.create_from_options(options)

    def find(self, image: np.ndarray) -> list[tuple]:
        import mediapipe as mp

        ih, iw = image.shape[:2]
        result = self._impl.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
        found = []
        for d in result.detections:
            bb = d.bounding_box  # the Tasks API gives the box in pixels and keypoints normalised
            kps = np.array([[k.x * iw, k.y * ih] for k in d.keypoints], np.float32)
            found.append((bb.origin_x, bb.origin_y, bb.width, bb.height, d.categories[0].score, kps))
        return found

    def close(self) -> None:
        self._impl.close()


class _FullRange:
    """The full-range model through the legacy ``mp.solutions.face_detection`` graph; ``find`` as for
    :class:`_ShortRange`."""

    def __init__(self, min_score: float):
        bundled_model_path("full")  # the legacy graph finds the model by its own resource path: this same file
        from mediapipe.python.solutions import face_detection

        self._impl = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score)
        # The legacy graph starts its TFLite interpreter on the first frame, not here, and that start writes
        # native log lines (XNNPACK delegate, feedback manager) straight to fd 2. Running one blank frame now
        # moves them into construction, which the CLI wraps to keep them off the terminal; the graph keeps no
        # state between frames, so later detections are unaffected.
        self._impl.process(np.zeros((64, 64, 3), np.uint8))

    def find(self, image: np.ndarray) -> list[tuple]:
        ih, iw = image.shape[:2]
        found = []
        for d in self._impl.process(np.ascontiguousarray(image)).detections or []:
            rb = d.location_data.relative_bounding_box
            kps = np.array([[k.x * iw, k.y * ih] for k in d.location_data.relative_keypoints], np.float32)
            found.append((rb.xmin * iw, rb.ymin * ih, rb.width * iw, rb.height * ih, d.score[0], kps))
        return found

    def close(self) -> None:
        self._impl.close()


def reduce_frame(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``frame`` halved (2x2 area averaging) until its longer side is at most ``max_side``, and the scale applied."""
    import cv2

    # Halving rather than resizing to exactly max_side: OpenCV's INTER_AREA is fast only for a factor of 2
    # (0.3 ms for 720p), while other factors cost 3-70 ms, more than detection itself.
    image, scale = frame, 1.0
    while max_side and max(image.shape[:2]) > max_side and min(image.shape[:2]) >= 4:
        ih, iw = image.shape[0] // 2, image.shape[1] // 2
        image = cv2.resize(image[:2 * ih, :2 * iw], (iw, ih), interpolation=cv2.INTER_AREA)
        scale *= 0.5
    return image, scale


class FaceDetector:
    """Finds every face in RGB frames with BlazeFace.

    One instance per thread: a MediaPipe graph must not be shared between threads, so give each worker its own.

    ``model``: ``"auto"`` (both models, faces from about 24 px wide to frame-filling; see
    :mod:`fer_batch.detect_auto`), ``"short"`` (faces within about 2 m: at least ~10% of the frame's longer side)
    or ``"full"`` (down to ~7%). ``min_score``: detections below it are dropped (``auto`` keeps its own, measured
    thresholds above it). ``max_side``: a frame whose longer side exceeds it is halved (2x2 area averaging) until
    it does not, before detection; results are mapped back to the original frame's pixels. ``None`` detects at full
    resolution.

    ``auto`` keeps a little state between the frames of one video (when to look for small faces); call
    :meth:`reset` when a new source starts. ``short`` and ``full`` keep none.

    The MediaPipe graphs are fully started by the constructor, so their native start-up logging happens there and
    not on the first :meth:`detect`.
    """

    def __init__(self, model: str = "auto", min_score: float = 0.5, max_side: int | None = DEFAULT_MAX_SIDE):
        if model not in DETECTORS:
            raise UsageError(f"--detector {model!r} is not allowed; choose one of {', '.join(DETECTORS)}")
        if max_side is not None and max_side < 1:
            raise UsageError(f"max_side must be a positive number of pixels or None, got {max_side}")
        self.model = model
        self.min_score = min_score
        self.max_side = max_side
        self._impl = None
        if model == "short":
            self._impl = _ShortRange(min_score)
        elif model == "full":
            self._impl = _FullRange(min_score)
        elif model == "auto":
            from .detect_auto import AutoDetector

            self._impl = AutoDetector(_ShortRange, _FullRange)
        else:
            raise AssertionError(model)
        #: A small grayscale copy of the last frame (about 32 px wide), for the tracker's scene-cut test.
        self.thumbnail: np.ndarray | None = None
        self.thumbnail_scale = 1.0  # thumbnail pixels per frame pixel

    def reset(self) -> None:
        """A new source starts: forget what earlier frames taught (``auto`` then looks for small faces at once)."""
        if hasattr(self._impl, "reset"):
            self._impl.reset()

    def detect(self, frame_rgb: np.ndarray, *, bgr: bool = False) -> list[Detection]:
        """All faces in an HxWx3 uint8 RGB frame (BGR with ``bgr=True``: only the reduced copy is converted), highest
        score first."""
        import cv2

        if self._impl is None:
            raise RuntimeError("this FaceDetector has been closed")
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB frame, got shape {frame_rgb.shape} {frame_rgb.dtype}")
        h, w = frame_rgb.shape[:2]
        if h < 2 or w < 2:
            return []
        image, scale = reduce_frame(frame_rgb, self.max_side)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(image)
        self.thumbnail = _thumbnail(image)
        self.thumbnail_scale = self.thumbnail.shape[1] / w
        if self.model == "auto":
            found = self._impl.find(frame_rgb, image, scale, bgr=bgr)
            scale = 1.0  # auto maps its boxes to the frame's pixels itself
        else:
            found = self._impl.find(image)
        out = []
        for x, y, bw, bh, score, kps in found:
            if score < self.min_score:
                continue
            x, y, bw, bh = (v / scale for v in (x, y, bw, bh))
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            out.append(Detection(x0, y0, x1 - x0, y1 - y0, float(score), (kps / scale).astype(np.float32)))
        out.sort(key=lambda d: -d.score)
        return out

    def close(self) -> None:
        """Release the MediaPipe graph; the detector cannot be used afterwards. Safe to call twice."""
        impl, self._impl = getattr(self, "_impl", None), None
        if impl is not None:
            impl.close()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """About 32 px wide, grayscale: enough to see a scene change, cheap from the already reduced frame."""
    import cv2

    ih, iw = image.shape[:2]
    tw = min(32, iw)
    th = max(1, round(ih * tw / iw))
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (tw, th), interpolation=cv2.INTER_AREA)
