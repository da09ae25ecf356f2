"""Training augmentation with OpenCV: the same transforms as :func:`~.architectures.build_augmenter`, much faster.

Keras's ``RandomRotation``/``RandomZoom``/``RandomTranslation`` cost about half a second each per batch of 128 under
the torch backend (on a GPU host too), which made training there input-bound at about 0.6 s a step. This engine
composes flip, rotation, zoom and shift into one affine warp per face (``cv2.warpAffine``, reflected borders) and
applies the contrast jitter in numpy: about a millisecond a batch. Its random draws come from a numpy generator
keyed by (seed, epoch, batch), so it gives the same faces on every backend.

``crop-erase`` is the recipe of the 71-73% FER-2013 networks (Khaireddin & Chen 2021; WuJie1010's VGG19) adapted to
a fixed 48 px input: a random 48 px crop of the face padded by 4 px (reflected), which is a shift of up to 4 px,
a small rotation and scale, then random erasing (Zhong et al. 2020): with probability 0.5 a rectangle of 2-20% of
the face, aspect 0.3-3.3, is filled with uniform noise, so the network cannot lean on one region (the mouth).
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

#: strength -> (max rotation in degrees, max zoom, max shift as a fraction of the side, max contrast change)
STRENGTHS = {"standard": (10.0, 0.10, 0.10, 0.2), "strong": (15.0, 0.15, 0.12, 0.2),
             "crop-erase": (10.0, 0.05, 4 / 48, 0.2)}
#: strength -> (probability, min area, max area, min aspect) of random erasing; the max aspect is 1 / min aspect.
ERASING = {"crop-erase": (0.5, 0.02, 0.2, 0.3)}


class OpenCVAugmenter:
    """Random flip, rotation, zoom, shift and contrast for float32 (N, H, W, 1) batches of 0-255 faces."""

    def __init__(self, strength: str = "standard"):
        if strength not in STRENGTHS:
            raise UsageError(f"augmentation {strength!r} is not known; choose {', '.join(STRENGTHS)} (or none)")
        self.rotation, self.zoom, self.shift, self.contrast = STRENGTHS[strength]
        self.erasing = ERASING.get(strength)

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
        if self.erasing is not None:
            random_erase(out, rng, *self.erasing)
        return out


def random_erase(x: np.ndarray, rng: np.random.Generator, p: float, min_area: float, max_area: float,
                 min_aspect: float) -> np.ndarray:
    """Fill one random rectangle of each face in (N, H, W, 1) ``x`` with uniform 0-255 noise, in place, with
    probability ``p``. The rectangle covers ``min_area``-``max_area`` of the face with an aspect (h / w) drawn
    log-uniformly in [min_aspect, 1 / min_aspect], clipped to the face."""
    n, h, w = x.shape[:3]
    erase = rng.random(n) < p
    area = rng.uniform(min_area, max_area, n) * h * w
    aspect = np.exp(rng.uniform(np.log(min_aspect), -np.log(min_aspect), n))
    eh = np.clip(np.round(np.sqrt(area * aspect)), 1, h).astype(int)
    ew = np.clip(np.round(np.sqrt(area / aspect)), 1, w).astype(int)
    top = (rng.random(n) * (h - eh + 1)).astype(int)
    left = (rng.random(n) * (w - ew + 1)).astype(int)
    for i in np.flatnonzero(erase):
        x[i, top[i]:top[i] + eh[i], left[i]:left[i] + ew[i], 0] = rng.uniform(0.0, 255.0, (eh[i], ew[i]))
    return x
