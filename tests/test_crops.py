"""Upright, FER-framed 48x48 crops (fer_batch.crops), on drawn test patterns and the Grace Hopper photo."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

import synthetic_media as synthetic
from fer_batch import crops
from fer_batch.crops import CROP_SIZE, align_face, align_faces
from fer_batch.detect import DETECTORS, Detection


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return synthetic.grace_hopper_rgb()


def rotate(image: np.ndarray, centre, degrees: float) -> np.ndarray:
    """The image rotated counter-clockwise (as seen) about `centre`, edges replicated, same size."""
    m = cv2.getRotationMatrix2D(tuple(map(float, centre)), degrees, 1.0)
    return cv2.warpAffine(image, m, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def smooth_corr(a: np.ndarray, b: np.ndarray) -> float:
    # Compared at the scale of eyes and mouth (sigma 2 px of 48): that is what framing and orientation decide,
    # while BlazeFace's keypoint jitter (2-5 degrees, ~1 px) decorrelates the fine texture of glasses and skin.
    a, b = (cv2.GaussianBlur(x.astype(np.float32), (0, 0), 2).ravel() for x in (a, b))
    return float(np.corrcoef(a, b)[0, 1])


def test_shape_and_dtype(detectors, photo):
    det = detectors["short"].detect(photo)[0]
    crop = align_face(photo, det)
    assert crop.shape == (CROP_SIZE, CROP_SIZE) and crop.dtype == np.uint8
    assert crop.std() > 20  # a face, not a flat patch


def test_eyes_land_level_at_the_calibrated_place():
    # Two dark dots as eyes on a tilted eye line (-20 degrees as seen: the left eye is higher). The crop must show
    # them level, EYE_HEIGHT down the crop and 48 / SIDE_PER_EYE_DISTANCE pixels apart.
    frame = np.full((400, 500, 3), 230, np.uint8)
    right_eye, left_eye = np.array([200.0, 230.0]), np.array([200.0 + 90 * np.cos(0.349), 230.0 - 90 * np.sin(0.349)])
    for eye in (right_eye, left_eye):
        cv2.circle(frame, tuple(int(round(v * 16)) for v in eye), 6 * 16, (20, 20, 20), -1, cv2.LINE_AA, shift=4)
    mid, along = (right_eye + left_eye) / 2, (left_eye - right_eye) / 90
    ears = [mid - 90 * along, mid + 90 * along]  # symmetric, so the crop centres on the eyes across the face
    kps = np.array([right_eye, left_eye, mid, mid, *ears], np.float32)
    det = Detection(150.0, 150.0, 150.0, 150.0, 0.9, kps)  # small box: the eye distance sets the scale
    crop = align_face(frame, det).astype(np.float32)
    dark = np.clip(200 - crop, 0, None)  # the dots only, not the light background
    spots = []
    for half in (dark[:, :24], dark[:, 24:]):
        ys, xs = np.mgrid[0:48, 0:24]
        spots.append(((xs * half).sum() / half.sum(), (ys * half).sum() / half.sum()))
    (rx, ry), (lx, ly) = spots[0], (spots[1][0] + 24, spots[1][1])
    assert abs(ry - ly) < 0.5, "eye line not level"
    assert abs((ry + ly) / 2 + 0.5 - crops.EYE_HEIGHT * 48) < 0.6
    assert abs((lx - rx) - 48 / crops.SIDE_PER_EYE_DISTANCE) < 0.6
    assert abs((lx + rx) / 2 + 0.5 - 24) < 0.6


@pytest.mark.parametrize("model", DETECTORS)
@pytest.mark.parametrize("degrees", [25, -25])
def test_rotated_photo_gives_the_same_crop(detectors, photo, model, degrees, monkeypatch):
    det = detectors[model]
    d0 = det.detect(photo)[0]
    upright = align_face(photo, d0)
    rotated = rotate(photo, (d0.x + d0.w / 2, d0.y + d0.h / 2), degrees)
    (d,) = det.detect(rotated)
    aligned = smooth_corr(upright, align_face(rotated, d))
    # Measured: 0.94-0.99 aligned; 0.56-0.77 with the rotation switched off (raw pixels: 0.76-0.92 and 0.34-0.54).
    assert aligned > 0.9
    monkeypatch.setattr(crops, "crop_geometry", lambda det, f=crops.crop_geometry: f(det)[:3] + (0.0,))
    assert smooth_corr(upright, align_face(rotated, d)) < 0.85, "the test would not notice missing alignment"


def test_large_face_is_area_reduced(detectors, photo):
    # A face 4x larger (side ~900 px) must give the crop an area reduction of the face gives: a bilinear warp
    # straight to 48 px would alias (measured: correlation 0.90, pixels off by up to 200 grey levels).
    d0 = detectors["short"].detect(photo)[0]
    reference = cv2.resize(align_face(photo, d0, size=192), (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
    big = cv2.resize(photo, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    d4 = dataclasses.replace(d0, x=d0.x * 4, y=d0.y * 4, w=d0.w * 4, h=d0.h * 4, keypoints=d0.keypoints * 4)
    large = align_face(big, d4).astype(np.float32)
    assert np.corrcoef(reference.ravel(), large.ravel())[0, 1] > 0.99
    assert np.abs(reference - large).mean() < 3


def test_face_half_outside_the_frame(detectors, photo):
    d0 = detectors["short"].detect(photo)[0]
    full = align_face(photo, d0)
    cut_at = int(d0.x + d0.w / 2)  # the frame now starts at the middle of the face
    cut = np.ascontiguousarray(photo[:, cut_at:])
    shifted = dataclasses.replace(d0, x=0.0, w=d0.x + d0.w - cut_at, keypoints=d0.keypoints - [cut_at, 0])
    crop = align_face(cut, shifted)
    assert crop.shape == (48, 48)
    # The part of the square inside the frame is sampled exactly as before; the rest repeats the edge pixels.
    assert np.abs(crop[:, 30:].astype(int) - full[:, 30:]).max() <= 1
    # And straight from the detectors, with about 40% of the face cut off.
    cut = np.ascontiguousarray(photo[:, cut_at - 30:])
    for det in detectors.values():
        det.reset()  # a new picture: auto's schedule starts again (as the pipeline does at each source)
        found = det.detect(cut)
        assert len(found) == 1 and found[0].x == 0
        assert align_faces(cut, found).shape == (1, 48, 48, 1)


def test_align_faces_batches(detectors, photo):
    empty = align_faces(photo, [])
    assert empty.shape == (0, 48, 48, 1) and empty.dtype == np.uint8
    d = detectors["short"].detect(photo)
    batch = align_faces(photo, d + d)
    assert batch.shape == (2, 48, 48, 1) and batch.dtype == np.uint8
    assert np.array_equal(batch[0, :, :, 0], align_face(photo, d[0]))


@pytest.mark.parametrize("shift", [(0, 0), (-0.45, 0), (0.45, 0.3), (0, -0.6), (2.0, 2.0)])
def test_grey_before_the_warp_matches_warping_the_colour_frame(detectors, photo, shift):
    """The crop greys only the region it samples, then warps one channel: the same picture as warping all three
    channels of the whole frame and greying the crop, within the one level that uint8 rounding allows, also for
    faces at or past the frame's edges (shift is in face widths; (2, 2) puts the square wholly outside)."""
    d0 = detectors["short"].detect(photo)[0]
    dx, dy = shift[0] * d0.w, shift[1] * d0.h
    det = dataclasses.replace(d0, x=d0.x + dx, y=d0.y + dy, keypoints=d0.keypoints + np.float32([dx, dy]))
    cx, cy, side, angle = crops.crop_geometry(det)
    k = max(1, min(crops.MAX_OVERSAMPLE, int(np.ceil(side / CROP_SIZE))))
    m = cv2.getRotationMatrix2D((cx, cy), angle, CROP_SIZE * k / side)
    m[:, 2] += CROP_SIZE * k / 2 - np.array([cx, cy])
    whole = cv2.warpAffine(photo, m, (CROP_SIZE * k,) * 2, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    reference = cv2.cvtColor(cv2.resize(whole, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA),
                             cv2.COLOR_RGB2GRAY)
    crop = align_face(photo, det)
    assert np.abs(crop.astype(int) - reference).max() <= 1
    assert crop.std() > 5 or shift == (2.0, 2.0)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)  # a grey frame is taken as it is
    assert np.abs(align_face(grey, det).astype(int) - reference).max() <= 1
    bgr = np.ascontiguousarray(photo[..., ::-1])
    assert np.array_equal(align_face(bgr, det, bgr=True), crop)
