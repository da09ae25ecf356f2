"""A second opinion on a detected face: MediaPipe's face-mesh model says whether a crop around it holds a face.

BlazeFace (:mod:`fer_batch.detect`) scores boxes; on rendered text (round glyphs such as "8", "0", "9") it can be as
sure as on a real face. The face-mesh model of the same wheel (``modules/face_landmark/face_landmark.tflite``) was
trained on a different task: it fits 468 landmarks to the face in a crop and, beside them, gives a face-presence
logit, which MediaPipe's own face-mesh graph uses to drop a tracked face that is gone. That logit is the check here.

The crop is the one MediaPipe's graphs feed the model: the detection box squared on its longer side, enlarged 1.5x
and turned so that the eyes lie level (``FaceDetectionFrontDetectionToRoi``, in MediaPipe's sources), border pixels
replicated, resized to 192x192 RGB in [0, 1]; the presence is sigmoid(logit), kept at >= 0.5 (input size, range,
sigmoid and bar read from the ``FaceLandmarkCpu`` graph config compiled into the 0.10.21 wheel).

One :class:`FaceVerifier` per detector (detectors live one per worker thread; an interpreter must not be shared),
its TensorFlow Lite interpreter made with the verifier and run with one thread.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import ModelError

INPUT = 192  # the model's input side (pixels)
MARGIN = 1.5  # MediaPipe's crop: the detection box's longer side, enlarged this much


def bundled_mesh_path() -> Path:
    """Path of the face-mesh model inside the installed mediapipe wheel; :class:`ModelError` if it is missing."""
    from .detect import bundled_model_path

    path = bundled_model_path("short").parents[1] / "face_landmark" / "face_landmark.tflite"
    if not path.is_file():
        raise ModelError(f"the face-mesh model {path} is missing from the mediapipe wheel "
                         "(mediapipe==0.10.21 bundles it)")
    return path


class FaceVerifier:
    """``logit(frame, box, keypoints)``: the face-mesh model's face-presence logit for a detected face."""

    def __init__(self):
        import tensorflow as tf

        from .threads import warnings_ignored

        path = bundled_mesh_path()
        try:
            with warnings_ignored():  # "tf.lite.Interpreter is deprecated" (see tflite.py); in a worker thread
                self._interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=1)
            self._interpreter.allocate_tensors()
            inp = self._interpreter.get_input_details()[0]
            outs = self._interpreter.get_output_details()
            if tuple(inp["shape"]) != (1, INPUT, INPUT, 3) or len(outs) != 2:
                raise ValueError(f"expected input (1, {INPUT}, {INPUT}, 3) and two outputs, got "
                                 f"{tuple(inp['shape'])} and {len(outs)}")
        except Exception as exc:  # the interpreter raises a variety of types
            raise ModelError(f"the face-mesh model {path} cannot be loaded ({type(exc).__name__}: {exc})") from None
        self._input = inp["index"]
        # Landmarks are (1, 1, 1, 1404); the face flag is the output with a single value.
        self._flag = next(o["index"] for o in outs if int(np.prod(o["shape"])) == 1)
        self.presence_logit(np.zeros((INPUT, INPUT, 3), np.uint8))  # the XNNPACK delegate logs on its first run

    def crop(self, frame: np.ndarray, box: tuple, keypoints: np.ndarray) -> np.ndarray:
        """The model's 192x192 input for the face at ``box`` (x, y, w, h) with BlazeFace's ``keypoints`` (eyes
        first), in ``frame``'s channel order."""
        import cv2

        x, y, w, h = box[:4]
        cx, cy = x + w / 2, y + h / 2
        (rx, ry), (lx, ly) = keypoints[0], keypoints[1]
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
        m = cv2.getRotationMatrix2D((cx, cy), angle, INPUT / (MARGIN * max(w, h, 1e-6)))
        m[:, 2] += (INPUT / 2 - cx, INPUT / 2 - cy)
        return cv2.warpAffine(frame, m, (INPUT, INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def presence_logit(self, crop_rgb: np.ndarray) -> float:
        """The model's face-presence logit for a 192x192 RGB uint8 crop."""
        self._interpreter.set_tensor(self._input, (crop_rgb.astype(np.float32) / 255.0)[None])
        self._interpreter.invoke()
        return float(self._interpreter.get_tensor(self._flag).ravel()[0])

    def logit(self, frame: np.ndarray, box: tuple, keypoints: np.ndarray, *, bgr: bool = False) -> float:
        """The face-presence logit of the face at ``box`` in ``frame`` (RGB, or BGR with ``bgr=True``): above 0 the
        model thinks a face is there (presence = sigmoid(logit) above 0.5)."""
        import cv2

        crop = self.crop(frame, box, keypoints)
        if bgr:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        return self.presence_logit(crop)

    def close(self) -> None:
        self._interpreter = None
