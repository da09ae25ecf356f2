"""Cutting FER-2013-like 48x48 grayscale crops: upright (from the eye keypoints), framed like FER's faces."""

from __future__ import annotations

import math

import numpy as np

CROP_SIZE = 48
# Framing relative to the eyes: the crop side is SIDE_PER_EYE_DISTANCE inter-ocular distances, and the eye midpoint
# sits EYE_HEIGHT of the way down the crop (FER-2013 faces are tight: brows near the top, chin near the bottom).
SIDE_PER_EYE_DISTANCE = 3.3
EYE_HEIGHT = 0.42
# Fallback when the eyes are implausibly close (profile views): the side relative to the detection box.
SIDE_PER_BOX = 1.3


def _crop_geometry(det):
    right_eye, left_eye = det.keypoints[0], det.keypoints[1]
    dx, dy = float(left_eye[0] - right_eye[0]), float(left_eye[1] - right_eye[1])
    eye_dist = math.hypot(dx, dy)
    box_side = max(det.w, det.h)
    angle = math.degrees(math.atan2(dy, dx))
    if eye_dist < 0.25 * box_side:  # eyes unreliable: frame from the box, no rotation
        side = SIDE_PER_BOX * box_side
        cx, cy = det.x + det.w / 2, det.y + det.h / 2
        return cx, cy, side, 0.0
    side = max(SIDE_PER_EYE_DISTANCE * eye_dist, 0.8 * box_side)
    mx, my = (right_eye[0] + left_eye[0]) / 2, (right_eye[1] + left_eye[1]) / 2
    # The crop centre lies below the eye midpoint, along the face's own vertical axis.
    down = (0.5 - EYE_HEIGHT) * side
    rad = math.radians(angle)
    cx, cy = mx - down * math.sin(rad), my + down * math.cos(rad)
    return float(cx), float(cy), float(side), angle


def align_face(frame_rgb: np.ndarray, det, size: int = CROP_SIZE) -> np.ndarray:
    """A (size, size) uint8 grayscale crop of one detected face, rotated upright and framed like FER-2013."""
    import cv2

    cx, cy, side, angle = _crop_geometry(det)
    # Warp straight to an intermediate multiple of `size` (only the face region is touched), then area-reduce:
    # FER-2013's faces were area-downscaled, and a direct bilinear shrink of a large face would alias.
    factor = max(1, min(8, int(side // size)))
    inter = size * factor
    scale = inter / side
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += inter / 2 - cx
    m[1, 2] += inter / 2 - cy
    patch = cv2.warpAffine(frame_rgb, m, (inter, inter), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gray = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    if factor > 1:
        gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    return gray


def align_faces(frame_rgb: np.ndarray, dets) -> np.ndarray:
    """Crops of all detections as a (N, 48, 48, 1) uint8 array (shape (0, 48, 48, 1) when there are none)."""
    if not dets:
        return np.zeros((0, CROP_SIZE, CROP_SIZE, 1), np.uint8)
    return np.stack([align_face(frame_rgb, d) for d in dets])[..., None]
