"""Training augmentation with OpenCV: the same transforms as :func:`~.architectures.build_augmenter`, much faster.

Keras's ``RandomRotation``/``RandomZoom``/``RandomTranslation`` cost about half a second each per batch of 128 under
the torch backend (on a GPU host too), which made training there input-bound at about 0.6 s a step. This engine
composes flip, rotation, zoom and shift into one affine warp per face (``cv2.warpAffine``, reflected borders) and
applies the contrast jitter in numpy: about a millisecond a batch. Its random draws come from a numpy generator
keyed by (seed, epoch, batch), so it gives the same faces on every backend.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

#: strength -> (max rotation in degrees, max zoom, max shift as a fraction of the side, max contrast change)
STRENGTHS = {"standard": (10.0, 0.10, 0.10, 0.2), "strong": (15.0, 0.15, 0.12, 0.2)}


class OpenCVAugmenter:
    """Random flip, rotation, zoom, shift and contrast for float32 (N, H, W, 1) batches of 0-255 faces."""

    def __init__(self, strength: str = "standard"):
        if strength not in STRENGTHS:
            raise UsageError(f"augmentation {strength!r} is not known; choose {', '.join(STRENGTHS)} (or none)")
        self.rotation, self.zoom, self.shift, self.contrast = STRENGTHS[strength]

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import cv2

        n, h, w = x.shape[:3]
        flip = rng.random(n) < 0.5
        angle = rng.uniform(-self.rotation, self.rotation, n)
        scale = 1.0 + rng.uniform(-self.zoom, self.zoom, n)
        dx = rng.uniform(-self.shift, self.shift, n) * w
        dy = rng.uniform(-self.shift, self.shift, n) * h
        factor = 1.0 + rng.uniform(-self.contrast, self.contrast, n)
        out = np.empty_like(x)
        centre = ((w - 1) / 2.0, (h - 1) / 2.0)
        for i in range(n):
            face = x[i, :, :, 0]
            if flip[i]:
                face = face[:, ::-1]
            m = cv2.getRotationMatrix2D(centre, float(angle[i]), float(scale[i]))
            m[0, 2] += dx[i]
            m[1, 2] += dy[i]
            warped = cv2.warpAffine(np.ascontiguousarray(face), m, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101)
            mean = warped.mean()
            out[i, :, :, 0] = np.clip((warped - mean) * factor[i] + mean, 0.0, 255.0)
        return out
