"""BlazeFace detection (fer_batch.detect) on the Grace Hopper photo bundled with matplotlib and composites of it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import synthetic_media as synthetic
from fer_batch import detect
from fer_batch.detect import DETECTORS, Detection, FaceDetector
from fer_batch.errors import ModelError, UsageError


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return synthetic.grace_hopper_rgb()


def iou(d: Detection, box) -> float:
    x0, y0, x1, y1 = max(d.x, box[0]), max(d.y, box[1]), min(d.x + d.w, box[2]), min(d.y + d.h, box[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (d.w * d.h + (box[2] - box[0]) * (box[3] - box[1]) - inter)


@pytest.mark.parametrize("model", DETECTORS)
def test_one_face_in_the_photo(detectors, photo, model):
    found = detectors[model].detect(photo)
    assert len(found) == 1
    d = found[0]
    assert d.score > 0.5
    x, y, w, h = synthetic.FACE_BOX_IN_PHOTO  # where the face is, measured once by eye and by detector
    assert iou(d, (x, y, x + w, y + h)) > 0.7
    assert d.keypoints.shape == (6, 2) and d.keypoints.dtype == np.float32
    kx, ky = d.keypoints[:, 0], d.keypoints[:, 1]
    # Eyes, nose and mouth lie well inside the box; the ear tragions sit on its sides.
    assert np.all((kx[:4] > d.x) & (kx[:4] < d.x + d.w) & (ky[:4] > d.y) & (ky[:4] < d.y + d.h))
    margin = 0.1 * d.w
    assert np.all((kx > d.x - margin) & (kx < d.x + d.w + margin) & (ky > d.y) & (ky < d.y + d.h))
    # MediaPipe order: the subject's right eye is on the image's left, eyes above nose above mouth.
    assert kx[0] < kx[1] and ky[:2].max() < ky[2] < ky[3]


@pytest.mark.parametrize("model", DETECTORS)
def test_no_face_in_blank_or_noise(detectors, model):
    rng = np.random.default_rng(0)
    frames = [np.full((480, 640, 3), 128, np.uint8), synthetic.make_background((640, 480), seed=3),
              np.clip(rng.normal(128, 30, (480, 640, 3)), 0, 255).astype(np.uint8)]
    if model == "full":
        # Full-contrast uniform noise (TV snow): the short-range model scores 0.37-0.57 on it (6 detections >= 0.5
        # over 20 seeds), so only the full-range model is held to "no face".
        frames.append(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    for frame in frames:
        assert detectors[model].detect(frame) == []


@pytest.mark.parametrize("model", DETECTORS)
def test_three_faces_sorted_by_score(detectors, model):
    placements = [synthetic.Placement(170, 300, 220), synthetic.Placement(480, 280, 180, angle=8),
                  synthetic.Placement(790, 320, 150, flip=True)]
    frame = synthetic.composite(synthetic.make_background((960, 600), seed=1), placements)
    found = detectors[model].detect(frame)
    assert len(found) == 3
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True)
    centres = sorted(d.x + d.w / 2 for d in found)
    assert np.allclose(centres, [p.cx for p in placements], atol=25)


def test_small_face_needs_the_full_range_model(detectors):
    # A 90-px face in a 1920x1080 frame: under 5% of the longer side. The full-range model finds it; the
    # short-range model (trained for faces within ~2 m) needs faces of about 10% of the longer side and finds none.
    frame = synthetic.composite(synthetic.make_background((1920, 1080), seed=4), [synthetic.Placement(1300, 400, 90)])
    found = detectors["full"].detect(frame)
    assert len(found) == 1
    assert abs(found[0].x + found[0].w / 2 - 1300) < 20 and abs(found[0].y + found[0].h / 2 - 400) < 30
    assert detectors["short"].detect(frame) == []


@pytest.mark.parametrize("model", DETECTORS)
def test_max_side_keeps_boxes_in_original_pixels(photo, model):
    import cv2

    frames = [cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC),  # 1024x1200
              synthetic.composite(synthetic.make_background((1280, 720), seed=5), [synthetic.Placement(500, 360, 300)])]
    with FaceDetector(model, max_side=None) as full_res, FaceDetector(model, max_side=640) as reduced:
        for frame in frames:
            a, b = full_res.detect(frame), reduced.detect(frame)
            assert len(a) == len(b) == 1
            a, b = a[0], b[0]
            # Measured differences are 0.3-1% of the box; a missing scale-back would be off by half the box.
            tol = 0.025 * a.w
            assert np.allclose([b.x, b.y, b.w, b.h], [a.x, a.y, a.w, a.h], atol=tol)
            assert np.abs(b.keypoints - a.keypoints).max() < 2 * tol


def test_boxes_are_clipped_to_the_frame(detectors, photo):
    # The face's left half is cut off: the box starts at x = 0, keypoints may lie outside.
    cut = np.ascontiguousarray(photo[:, 250:])
    for model, det in detectors.items():
        found = det.detect(cut)
        # The single-model detectors find the half face, so the clipping below is exercised; auto's answer depends
        # on the frames it saw before (its scan schedule), and its face-mesh check may reject half a face.
        assert found or model == "auto", model
        for d in found:
            assert d.x >= 0 and d.y >= 0 and d.x + d.w <= cut.shape[1] and d.y + d.h <= cut.shape[0]


def test_unknown_detector_name():
    with pytest.raises(UsageError) as err:
        FaceDetector("medium")
    message = str(err.value)
    assert "--detector" in message and "medium" in message and "short" in message and "full" in message


def test_missing_bundled_model(monkeypatch):
    monkeypatch.setitem(detect._MODEL_FILES, "short", "no_such_model.tflite")
    with pytest.raises(ModelError, match="no_such_model.tflite"):
        FaceDetector("short")


def test_bad_frames_and_closed_detector(photo):
    det = FaceDetector("short")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        det.detect(photo[:, :, 0])
    assert det.detect(np.zeros((1, 1, 3), np.uint8)) == []
    det.close()
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(photo)


def test_import_is_cheap():
    code = ("import sys, fer_batch.detect, fer_batch.crops; "
            "print(sorted(m for m in ('mediapipe', 'tensorflow', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("model", DETECTORS)
def test_quiet_cli_keeps_native_logs_off_stderr(tmp_path, photo, model):
    # The full-range graph used to start on its first frame, outside the CLI's fd-2 redirect around construction,
    # so "INFO: Created TensorFlow Lite XNNPACK delegate" and a W0000 feedback-manager line reached the terminal.
    from PIL import Image

    Image.fromarray(photo).save(tmp_path / "face.png")
    out = tmp_path / "r.csv"
    res = subprocess.run([sys.executable, "-m", "fer_batch", "analyze", str(tmp_path / "face.png"), "--out", str(out),
                          "--detector", model, "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    leftover = [line for line in res.stderr.splitlines()
                if line.strip() and not line.startswith(("fer-batch: sources:", "timeline:"))]
    assert leftover == [], leftover
    assert out.read_text().count("\n") == 2  # the header and one face row: detection after the warm-up still works
