"""Face detection with MediaPipe BlazeFace, from the models bundled in the mediapipe wheel (nothing downloaded).

``short`` runs the short-range model through the MediaPipe Tasks API; ``full`` runs the full-range model through
the legacy ``mp.solutions.face_detection`` graph (the Tasks detector rejects the full-range model's anchors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError, UsageError

DETECTORS = ("short", "full")


@dataclass(frozen=True)
class Detection:
    """A face: box (pixels of the original frame, clipped to it), score, and six keypoints.

    Keypoints, MediaPipe order: right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion
    ("right" is the subject's right, on the left of the image).
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: np.ndarray


def _bundled_model(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("mediapipe is not installed; install the pinned mediapipe==0.10.21")
    path = Path(list(spec.submodule_search_locations)[0]) / "modules" / "face_detection" / name
    if not path.is_file():
        raise ModelError(f"the BlazeFace model {path} is missing from the mediapipe wheel (mediapipe==0.10.21 "
                         "bundles it; later releases do not)")
    return path


class FaceDetector:
    """Finds every face in RGB frames. Not thread-safe: create one per thread (MediaPipe graphs are stateful).

    ``max_side``: frames whose longer side exceeds it are reduced (area interpolation) before detection, and the
    results scaled back. BlazeFace looks at a 128x128 (short) or 192x192 (full) input anyway, so this mostly saves
    MediaPipe's own copy and resize of a large frame.
    """

    def __init__(self, model: str = "short", min_score: float = 0.5, max_side: int | None = 640):
        if model not in DETECTORS:
            raise UsageError(f"--detector {model!r} is not allowed; choose one of {', '.join(DETECTORS)}")
        self.model = model
        self.min_score = min_score
        self.max_side = max_side
        if model == "short":
            from mediapipe.tasks.python import BaseOptions
            from mediapipe.tasks.python import vision

            options = vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_path=str(_bundled_model("face_detection_short_range.tflite"))),
                running_mode=vision.RunningMode.IMAGE,
                min_detection_confidence=min_score,
                min_suppression_threshold=0.3,
            )
            self._impl = vision.FaceDetector.create_from_options(options)
        else:
            _bundled_model("face_detection_full_range_sparse.tflite")
            from mediapipe.python.solutions import face_detection

            self._impl = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score)

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """All faces in an HxWx3 uint8 RGB frame, highest score first."""
        import cv2

        h, w = frame_rgb.shape[:2]
        if h < 2 or w < 2:
            return []
        scale = 1.0
        image = frame_rgb
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            image = cv2.resize(frame_rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        image = np.ascontiguousarray(image)
        ih, iw = image.shape[:2]
        found = []
        if self.model == "short":
            import mediapipe as mp

            result = self._impl.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
            for d in result.detections:
                bb = d.bounding_box
                kps = np.array([[k.x * iw, k.y * ih] for k in d.keypoints], np.float32)
                found.append((bb.origin_x, bb.origin_y, bb.width, bb.height, d.categories[0].score, kps))
        else:
            result = self._impl.process(image)
            for d in result.detections or []:
                rb = d.location_data.relative_bounding_box
                kps = np.array([[k.x * iw, k.y * ih] for k in d.location_data.relative_keypoints], np.float32)
                found.append((rb.xmin * iw, rb.ymin * ih, rb.width * iw, rb.height * ih, d.score[0], kps))
        out = []
        for x, y, bw, bh, score, kps in found:
            x, y, bw, bh = (v / scale for v in (x, y, bw, bh))
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            out.append(Detection(x0, y0, x1 - x0, y1 - y0, float(score), kps / scale))
        out.sort(key=lambda d: -d.score)
        return out

    def close(self) -> None:
        impl, self._impl = getattr(self, "_impl", None), None
        if impl is not None:
            impl.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
