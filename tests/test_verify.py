"""The face-mesh second opinion (fer_batch/verify.py) on generated faces and rendered text, with the real model."""

from __future__ import annotations

import math

import numpy as np
import pytest

import group_scenes as gs
import synthetic_media as synthetic
from fer_batch.detect import FaceDetector
from fer_batch.detect_auto import MESH_BAR
from fer_batch.verify import INPUT, FaceVerifier


@pytest.fixture(scope="module")
def verifier():
    v = FaceVerifier()
    yield v
    v.close()


def _eyes(cx: float, cy: float, px: float, angle: float) -> np.ndarray:
    """Two eye keypoints on a line tilted like a face turned ``angle`` degrees counter-clockwise on screen."""
    a, d = math.radians(angle), 0.2 * px
    return np.array([[cx - d * math.cos(a), cy + d * math.sin(a)], [cx + d * math.cos(a), cy - d * math.sin(a)]],
                    np.float32)


@pytest.mark.parametrize("px", [24, 48, 160])
@pytest.mark.parametrize("angle", [0, 20, -25])
def test_generated_faces_are_faces(verifier, px, angle):
    p = synthetic.Placement(320, 240, px, angle=angle, flip=angle < 0)
    rgb = synthetic.composite(synthetic.make_background((640, 480), seed=3), [p])
    box = (320 - px / 2, 240 - px / 2, px, px)
    # Measured: logits 10-24 for these (the bars are 0, and -3 under 40 px).
    assert verifier.logit(rgb, box, _eyes(320, 240, px, angle)) >= MESH_BAR + 5
    # The same face in BGR order, said so, gives the same answer.
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert verifier.logit(bgr, box, _eyes(320, 240, px, angle), bgr=True) == pytest.approx(
        verifier.logit(rgb, box, _eyes(320, 240, px, angle)), abs=1e-3)


@pytest.mark.parametrize("text,scale", [("8", 3.0), ("0", 6.0), ("BREAKING", 2.0), ("@@", 4.0)])
def test_rendered_text_is_not_a_face(verifier, text, scale):
    import cv2

    rgb = synthetic.make_background((640, 480), seed=3)
    thick = int(2 * scale)
    (tw, th), _ = cv2.getTextSize(text, 0, scale, thick)
    cv2.putText(rgb, text, (320 - tw // 2, 240 + th // 2), 0, scale, (230, 150, 60), thick, cv2.LINE_AA)
    side = max(th, 24)
    # Measured: -1.6 ("8"), -5.4 ("0"), -8.6, -7.1.
    assert verifier.logit(rgb, (320 - side / 2, 240 - side / 2, side, side), _eyes(320, 240, side, 0)) < MESH_BAR


def test_the_crop_is_mediapipes(verifier):
    """The box squared, enlarged 1.5x, turned level by the eyes: a tilted box's centre stays at the crop's centre
    and a face tilted 30 degrees comes out upright (its eye row level)."""
    p = synthetic.Placement(300, 200, 120, angle=30)
    rgb = synthetic.composite(synthetic.make_background((640, 480), seed=3), [p])
    crop = verifier.crop(rgb, (240, 140, 120, 120), _eyes(300, 200, 120, 30))
    assert crop.shape == (INPUT, INPUT, 3)
    upright = synthetic.composite(synthetic.make_background((640, 480), seed=3), [synthetic.Placement(300, 200, 120)])
    level = verifier.crop(upright, (240, 140, 120, 120), _eyes(300, 200, 120, 0))
    # The middle of the two crops (the face itself; the backgrounds differ by the turn) nearly agree.
    mid = slice(INPUT // 3, 2 * INPUT // 3)
    assert np.abs(crop[mid, mid].astype(int) - level[mid, mid].astype(int)).mean() < 12


def test_auto_drops_a_text_face_that_blazeface_passed():
    """No-face seed 1108 (title text): BlazeFace's rules kept a face there before the face-mesh check (the only
    one in seeds 0-1999); the face-mesh model was asked and said no."""
    with FaceDetector("auto") as det:
        before = det._impl.passes_run["mesh"]
        assert det.detect(gs.no_face_scene(1108)) == []
        assert det._impl.passes_run["mesh"] == before + 1


def test_a_clip_asks_the_face_mesh_model_once_per_face():
    """Six swaying faces over six frames: one face-mesh run each when they appear, not one per frame."""
    clip = gs.group_clip(frames=6, face_px=(44, 56), cross=False)
    with FaceDetector("auto") as det:
        counts = [len(det.detect(rgb)) for rgb in clip.frames]
        assert counts == [6] * 6
        assert det._impl.passes_run["mesh"] == 6


@pytest.mark.data
def test_real_faces_pass_and_the_same_pixels_shuffled_do_not(verifier, shared_fer2013):
    """The first 60 FER-2013 PublicTest faces (real people, grayscale, tight crops), each enlarged to 128 px on a
    gray frame; then each face's own pixels in a random order."""
    import csv
    import gzip

    import cv2

    faces = []
    with gzip.open(shared_fer2013, "rt") as f:
        for row in csv.DictReader(f):
            if row["Usage"] == "PublicTest":
                faces.append(np.array(row["pixels"].split(), np.uint8).reshape(48, 48))
                if len(faces) == 60:
                    break

    def logit(face48: np.ndarray) -> float:
        frame = np.full((320, 320), 128, np.uint8)
        frame[96:224, 96:224] = cv2.resize(face48, (128, 128), interpolation=cv2.INTER_CUBIC)
        # The face fills the middle ~80% of a FER crop; its eyes lie level, about 40% down.
        return verifier.logit(cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB), (109, 109, 102, 102),
                              np.array([[130, 150], [190, 150]], np.float32))

    rng = np.random.default_rng(0)
    real = [logit(face) for face in faces]
    shuffled = [logit(rng.permutation(face.ravel()).reshape(48, 48)) for face in faces]
    # Measured: 55 of 60 real faces at or above the bar (the rest -7.0 to -0.1); no shuffled one (all below -7.5).
    assert sum(v >= MESH_BAR for v in real) >= 50, sorted(real)[:10]
    assert max(shuffled) < MESH_BAR, sorted(shuffled)[-5:]
