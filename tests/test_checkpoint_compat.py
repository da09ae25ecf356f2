"""A checkpoint written by the code before ``fer_batch/training/train.py`` was split by concern still resumes.

``data/resume_53124ec`` is what commit 53124ec's ``train()`` left when it was stopped (as Ctrl-C would) at the end
of epoch 1 of 2, for :data:`CONFIG` on ``make_faces(30, seed=1)`` with 22 training faces a class:
``ckpt/backup`` (Keras's BackupAndRestore: weights, optimizer state and step) and ``run/config.json`` and
``run/history.csv``. The file names, the layer and variable paths inside the weights file and the step count are
what a split could have broken.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("h5py")

from fer_batch.classify import load_keras_model  # noqa: E402
from fer_batch.training.train import TrainConfig, train  # noqa: E402
from synthetic_faces import make_faces, write_csv  # noqa: E402

FIXTURE = Path(__file__).parent / "data" / "resume_53124ec"
#: The default recipe (warm-up then cosine, standard augmentation) with mixup: every piece of state a resume needs.
CONFIG = dict(arch="tiny", batch_size=8, optimizer="adam", learning_rate=0.01, mixup=0.2, tta="none", epochs=2)


def _history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_checkpoint_made_before_the_split_resumes_as_an_uninterrupted_run(tmp_path):
    x, y = make_faces(30, seed=1)
    usage = ["Training" if i < 7 * 22 else "PublicTest" for i in range(len(y))]
    data = write_csv(tmp_path / "faces.csv", x, y, usage)
    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    shutil.copytree(FIXTURE / "run", out)
    shutil.copytree(FIXTURE / "ckpt", ckpt)
    recorded = _history(out / "history.csv")
    assert [r["epoch"] for r in recorded] == ["0"]

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        train(TrainConfig(data=str(data), out=str(out), checkpoint_dir=str(ckpt), resume=True, **CONFIG), verbose=0)
    assert "resuming from the end of epoch 1" in err.getvalue()
    resumed = _history(out / "history.csv")
    assert [r["epoch"] for r in resumed] == ["0", "1"] and resumed[0] == recorded[0]  # epoch 1 was not redone

    with contextlib.redirect_stderr(io.StringIO()):
        train(TrainConfig(data=str(data), out=str(tmp_path / "straight"), checkpoint_dir=str(tmp_path / "s_ckpt"),
                          **CONFIG), verbose=0)
    straight = _history(tmp_path / "straight" / "history.csv")
    # Tolerances allow another CPU's last bits (the checkpoint was made on an AVX-512 x86); a resume that lost the
    # optimizer state or restarted the schedule misses by far more.
    for r, s in zip(resumed, straight, strict=True):
        for key in ("loss", "val_loss", "accuracy"):
            assert float(r[key]) == pytest.approx(float(s[key]), rel=1e-3, abs=1e-4), (key, r, s)
    wa = load_keras_model(out / "model.keras").get_weights()
    wb = load_keras_model(tmp_path / "straight" / "model.keras").get_weights()
    for a, b in zip(wa, wb):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
