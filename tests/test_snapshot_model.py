"""training/snapshot_model.py: the network that a run's latest checkpoint holds, saved as `model.keras` would be --
for a run distilled online too, whose checkpoint also carries the teacher."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from fer_batch.classify import load_keras_model  # noqa: E402
from fer_batch.training.architectures import build_model  # noqa: E402
from fer_batch.training.train import TrainConfig, train  # noqa: E402
from synthetic_faces import make_faces, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _snapshot_main():
    sys.path.insert(0, str(ROOT / "training"))
    try:
        from snapshot_model import main
    finally:
        sys.path.pop(0)
    return main


@pytest.mark.parametrize("online_teacher", [False, True], ids=["labels", "online-teacher"])
def test_the_snapshot_of_a_finished_run_predicts_as_its_model(tmp_path, online_teacher):
    main = _snapshot_main()
    x, y = make_faces(12, seed=2)
    usage = ["Training" if i % 4 else "PublicTest" for i in range(len(y))]
    data = write_csv(tmp_path / "faces.csv", x, y, usage)
    teacher = None
    if online_teacher:
        keras.utils.set_random_seed(1)
        teacher = tmp_path / "teacher.keras"
        build_model("tiny").save(teacher)
    out = tmp_path / "run"
    with contextlib.redirect_stderr(io.StringIO()):
        train(TrainConfig(data=str(data), out=str(out), checkpoint_dir=str(tmp_path / "ckpt"), arch="tiny",
                          batch_size=16, epochs=2, tta="flip", teacher=str(teacher) if teacher else None), verbose=0)
    assert main([str(out), str(tmp_path / "snap.keras")]) == 0
    faces = x[:20, ..., None].astype("float32")
    want = np.asarray(load_keras_model(out / "model.keras").predict(faces, verbose=0))
    got = np.asarray(load_keras_model(tmp_path / "snap.keras").predict(faces, verbose=0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want, want.mean(axis=0))  # faces told apart: not a comparison of constants


def test_a_snapshot_must_be_a_keras_file(tmp_path, capsys):
    main = _snapshot_main()
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path), str(tmp_path / "snap.h5")])
    assert info.value.code == 2 and "must end in .keras" in capsys.readouterr().err
