"""``--faces detect``: image-folder datasets of whole photos, cut into faces exactly as ``analyze`` cuts them."""

from __future__ import annotations

import contextlib
import io
import shutil

import numpy as np
import pytest

from fer_batch.errors import UsageError
from fer_batch.training.datasets import load_dataset
from synthetic_faces import make_faces, write_csv, write_folder


def _analyze_crop(path):
    """The crop `fer-batch analyze` makes of the largest face in an image (its own frame path, default detector):
    the reference for `--faces detect`."""
    from fer_batch.config import AnalyzeConfig
    from fer_batch.pipeline import default_detector_factory, frame_items
    from fer_batch.sources import Source

    config = AnalyzeConfig()
    detector = default_detector_factory(config)
    try:
        (item,) = list(frame_items(Source(path=path, name=str(path), media="image"), config, detector))
    finally:
        detector.close()
    assert item.boxes, f"analyze found no face in {path}"
    largest = max(range(len(item.boxes)), key=lambda i: item.boxes[i][2] * item.boxes[i][3])
    return item.crops[largest][..., 0], len(item.boxes)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, one_face_photo, multi_face_photo, no_face_photo, exif_rotated_photo):
    """ROOT/<emotion>/ of whole photos: one face, three faces, no face, an EXIF-rotated portrait, a corrupt file."""
    root = tmp_path_factory.mktemp("photos")
    for emotion, src, name in (("happy", one_face_photo, "portrait.jpg"), ("sad", multi_face_photo, "group.jpg"),
                               ("neutral", no_face_photo, "empty.jpg"), ("happy", exif_rotated_photo, "turned.jpg")):
        (root / emotion).mkdir(exist_ok=True)
        shutil.copy(src, root / emotion / name)
    (root / "sad" / "broken.png").write_bytes(b"not a png at all")
    return root


def test_detect_cuts_the_faces_analyze_would(photo_folder):
    ds = load_dataset(photo_folder, holdout=False, faces="detect")
    faces = ds["all"]
    # sorted class folders (happy, neutral, sad), sorted files: portrait, turned (happy), group (sad)
    assert faces.y.tolist() == [3, 3, 4]
    expected = [_analyze_crop(photo_folder / "happy" / "portrait.jpg")[0],
                _analyze_crop(photo_folder / "happy" / "turned.jpg")[0]]
    group_crop, n_group = _analyze_crop(photo_folder / "sad" / "group.jpg")
    assert n_group == 3
    expected.append(group_crop)
    for got, want in zip(faces.x[..., 0], expected):
        np.testing.assert_array_equal(got, want)
    # the EXIF-rotated copy of the portrait is turned upright before detection, so it gives nearly the same face
    assert np.abs(faces.x[0].astype(int) - faces.x[1].astype(int)).mean() < 12
    problems = "\n".join(ds.problems)
    assert f"{photo_folder / 'neutral' / 'empty.jpg'}: no face found" in problems
    assert f"{photo_folder / 'sad' / 'broken.png'}: not a readable image" in problems
    assert len(ds.problems) == 2
    assert any(n.startswith("1 image(s) showed several faces") and n.endswith(str(photo_folder / "sad" / "group.jpg"))
               for n in ds.notes), ds.notes


def test_as_is_resizes_whole_photos_and_says_so(photo_folder):
    ds = load_dataset(photo_folder, holdout=False)
    assert len(ds["all"]) == 4  # every readable image, the empty background too
    assert any("--faces detect" in n and "960x600" in n for n in ds.notes)
    # a whole-photo thumbnail is not the face crop
    crop, _ = _analyze_crop(photo_folder / "happy" / "portrait.jpg")
    assert np.abs(ds["all"].x[0, ..., 0].astype(int) - crop.astype(int)).mean() > 10


def test_face_crops_get_no_note(tmp_path):
    x, y = make_faces(2)
    ds = load_dataset(write_folder(tmp_path / "crops", x, y), holdout=False)
    assert ds.notes == []
    assert len(ds["all"]) == len(y)


def test_detect_on_a_csv_is_a_usage_error(tmp_path):
    x, y = make_faces(1)
    path = write_csv(tmp_path / "faces.csv", x, y)
    with pytest.raises(UsageError, match=r"--faces detect applies to image folders"):
        load_dataset(path, faces="detect")
    with pytest.raises(UsageError, match=r"--faces 'crop' is not allowed; choose one of as-is, detect"):
        load_dataset(path, faces="crop")


def _run_cli(argv):
    from fer_batch.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def test_evaluate_cli_with_detect(photo_folder, tmp_path):
    pytest.importorskip("keras")
    from fer_batch.cli import EXIT_OK, EXIT_USAGE

    rc, out, err = _run_cli(["evaluate", "--data", photo_folder, "--faces", "detect"])
    assert rc == EXIT_OK, err
    assert "no face found (--faces detect)" in err
    assert "(n=3)" in out
    x, y = make_faces(1)
    csv_path = write_csv(tmp_path / "faces.csv", x, y)
    rc, out, err = _run_cli(["evaluate", "--data", csv_path, "--faces", "detect"])
    assert rc == EXIT_USAGE
    assert "--faces detect applies to image folders" in err


def test_train_config_checks_faces():
    from fer_batch.training.train import TrainConfig

    with pytest.raises(UsageError, match="--faces"):
        TrainConfig(data="d", out="o", faces="crop")


def test_detect_faces_are_the_faces_analyze_classifies(photo_folder):
    """End to end: the model's output for each `--faces detect` face equals what `analyze` reports for the largest
    face of the same photo (the same crop through the same network)."""
    pytest.importorskip("keras")
    from fer_batch.classify import load_keras_model, resolve_model
    from fer_batch.pipeline import analyze

    faces = load_dataset(photo_folder, holdout=False, faces="detect")["all"]
    model = load_keras_model(resolve_model(None))
    ours = np.asarray(model.predict(faces.x, verbose=0))
    for row, photo in zip(ours, ("happy/portrait.jpg", "happy/turned.jpg", "sad/group.jpg"), strict=True):
        records = [r for r in analyze(str(photo_folder / photo), runtime="keras") if r.face_id is not None]
        largest = max(records, key=lambda r: r.w * r.h)
        np.testing.assert_allclose(row, largest.probs, atol=1e-5, err_msg=photo)
