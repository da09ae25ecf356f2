"""``fer-batch train`` and ``fer-batch evaluate`` end to end on a tiny generated dataset, resume, and the errors."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from fer_batch.cli import EXIT_DATASET, EXIT_MODEL, EXIT_OK, EXIT_USAGE, build_parser, main  # noqa: E402
from synthetic_faces import make_faces, pixels_text, write_csv, write_folder  # noqa: E402

N_PER_CLASS, TRAIN_PER_CLASS = 30, 22  # 154 training rows, 56 PublicTest rows
#: One quick epoch that learns: the paper's constant-rate Adam, small batches, the tiny net.
QUICK = ["--recipe", "paper", "--arch", "tiny", "--batch-size", "4", "--lr", "0.01"]


def run_cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A Kaggle-layout CSV of generated faces, with two malformed rows (lines 3 and 5) among the good ones."""
    base = tmp_path_factory.mktemp("data")
    x, y = make_faces(N_PER_CLASS, seed=1)
    n_train = 7 * TRAIN_PER_CLASS
    usage = ["Training" if i < n_train else "PublicTest" for i in range(len(y))]
    path = write_csv(base / "faces.csv", x, y, usage)
    lines = path.read_text().splitlines()
    lines.insert(2, "3,1 2 3,Training")  # line 3: wrong pixel count
    lines.insert(4, f"8,{pixels_text(x[0])},Training")  # line 5: label outside 0-6
    path.write_text("\n".join(lines) + "\n")
    return {"csv": path, "x": x, "y": y, "usage": usage, "base": base}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """One epoch of the tiny net through the CLI, with flip TTA in the saved model."""
    base = tmp_path_factory.mktemp("run")
    out, ckpt = base / "run", base / "ckpt"
    rc, stdout, stderr = run_cli(["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt,
                                  "--epochs", "1", "--tta", "flip", *QUICK])
    assert rc == EXIT_OK, stderr
    return {"out": out, "ckpt": ckpt, "stdout": stdout, "stderr": stderr}


def _history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_the_run_and_learns(trained, data):
    out = trained["out"]
    for name in ("model.keras", "metrics.json", "confusion_val.png", "curves.png", "config.json", "history.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # Malformed rows are reported with their line numbers, and training went on without them.
    assert f"{data['csv']}:3: expected 2304 pixel values, got 3" in trained["stderr"]
    assert f"{data['csv']}:5: label 8 outside 0-6" in trained["stderr"]
    assert f"checkpoints: {trained['ckpt']}" in trained["stderr"]
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["arch"] == "tiny" and config["config"]["paper_recipe"] is True
    assert config["config"]["tta"] == "flip" and config["config"]["learning_rate"] == 0.01
    assert config["splits"]["train"]["n"] == 7 * TRAIN_PER_CLASS and config["splits"]["val"]["n"] == 56
    rows = _history(out / "history.csv")
    assert [r["epoch"] for r in rows] == ["0"]
    # One epoch is enough to beat a uniform guess (cross-entropy ln 7 = 1.95) on held-out faces.
    assert float(rows[0]["val_loss"]) < math.log(7) - 0.15
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["splits"]["val"]["n"] == 56 and "val_no_tta" in metrics["splits"]
    assert metrics["arch"] == "tiny" and metrics["tta"] == "flip"
    assert f"model: {out / 'model.keras'}" in trained["stdout"]
    # The saved model holds the weights only: no optimizer slots (they would double a shipped model's size).
    with zipfile.ZipFile(out / "model.keras") as z:
        names = []
        h5py.File(io.BytesIO(z.read("model.weights.h5")), "r").visit(names.append)
    assert any("vars" in n for n in names) and not any("optimizer" in n for n in names)


def _independent_val(data):
    """PublicTest faces and labels, read without the package's loader."""
    with open(data["csv"], newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Usage"] == "PublicTest"]
    x = np.array([[int(v) for v in r["pixels"].split()] for r in rows], dtype=np.uint8).reshape(-1, 48, 48, 1)
    return x, np.array([int(r["emotion"]) for r in rows])


def test_evaluate_matches_predictions_of_the_saved_model(trained, data, tmp_path):
    from fer_batch.classify import load_keras_model

    rc, stdout, stderr = run_cli(["evaluate", "--model", trained["out"] / "model.keras", "--data", data["csv"],
                                  "--out", tmp_path / "ev"])
    assert rc == EXIT_OK, stderr
    assert f"{data['csv']}:3:" in stderr  # malformed rows are reported here too
    # Independently: load the saved file, predict the PublicTest faces, count.
    x, y = _independent_val(data)
    pred = np.asarray(load_keras_model(trained["out"] / "model.keras").predict_on_batch(x.astype("float32")))
    pred = pred.argmax(axis=1)
    accuracy = float((pred == y).mean())
    cm = np.zeros((7, 7), int)
    np.add.at(cm, (y, pred), 1)
    printed = re.findall(r"^accuracy (\d\.\d{4})  macro-F1 \S+  \(n=(\d+)\)$", stdout, flags=re.M)
    assert printed == [(f"{accuracy:.4f}", "56")]  # default: every split but train -> val only here
    assert "== val ==" in stdout
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(metrics["splits"]) == {"val"}
    assert metrics["splits"]["val"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert metrics["splits"]["val"]["confusion_matrix"] == cm.tolist()
    assert (tmp_path / "ev" / "confusion_val.png").stat().st_size > 0
    # The same faces as an image folder give the same report.
    x_all, y_all, usage = data["x"], data["y"], data["usage"]
    root = write_folder(tmp_path / "tree", x_all, y_all, ["val" if u == "PublicTest" else "train" for u in usage])
    rc, stdout2, _ = run_cli(["evaluate", "--model", trained["out"] / "model.keras", "--data", root])
    assert rc == EXIT_OK
    assert re.findall(r"^accuracy .*$", stdout2, flags=re.M) == re.findall(r"^accuracy .*$", stdout, flags=re.M)


def test_evaluate_split_choices_for_data_without_splits(trained, data, tmp_path):
    path = write_csv(tmp_path / "nosplit.csv", data["x"], data["y"])
    model = trained["out"] / "model.keras"
    rc, stdout, stderr = run_cli(["evaluate", "--model", model, "--data", path])
    assert rc == EXIT_OK and "(n=210)" in stdout and "== all ==" in stdout
    assert "no train/val/test splits" in stderr
    # --split val is the seeded, stratified holdout that `train --seed S` validates on: 6 of each class's 30.
    rc, stdout, _ = run_cli(["evaluate", "--model", model, "--data", path, "--split", "val", "--split", "train"])
    assert rc == EXIT_OK and "(n=42)" in stdout and "(n=168)" in stdout
    rc, _, stderr = run_cli(["evaluate", "--model", model, "--data", path, "--split", "test"])
    assert rc == EXIT_USAGE and "has no test split" in stderr
    # Data with splits: --split all is every row together; a split it lacks is named.
    rc, stdout, _ = run_cli(["evaluate", "--model", model, "--data", data["csv"], "--split", "all"])
    assert rc == EXIT_OK and "(n=210)" in stdout
    rc, _, stderr = run_cli(["evaluate", "--model", model, "--data", data["csv"], "--split", "test"])
    assert rc == EXIT_USAGE and "train, val" in stderr


def test_evaluate_model_errors(data, tmp_path, monkeypatch):
    from fer_batch.classify import MODELS_DIR

    rc, _, stderr = run_cli(["evaluate", "--model", "fastest", "--data", data["csv"]])
    assert rc == EXIT_MODEL and "fast, accurate" in stderr
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"no zip")
    rc, _, stderr = run_cli(["evaluate", "--model", bad, "--data", data["csv"]])
    assert rc == EXIT_MODEL and f"--model {str(bad)!r}: not a .keras file" in stderr, stderr
    # A package without its default model (a broken install): exit 3, naming it and what the package does hold.
    import fer_batch.classify as classify

    bare = tmp_path / "models"
    bare.mkdir()
    (bare / "accurate.keras").write_bytes((MODELS_DIR / "accurate.keras").read_bytes())
    monkeypatch.setattr(classify, "MODELS_DIR", bare)
    rc, _, stderr = run_cli(["evaluate", "--data", data["csv"]])  # the default, packaged `fast`
    assert rc == EXIT_MODEL and "this release does not ship the 'fast' model yet" in stderr, stderr
    assert "available: accurate" in stderr


def test_dataset_errors_exit_4(tmp_path, trained):
    empty = tmp_path / "broken.csv"
    empty.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n12,oops,PublicTest\n")
    for command in (["train", "--out", tmp_path / "r", "--checkpoint-dir", tmp_path / "c", *QUICK],
                    ["evaluate", "--model", trained["out"] / "model.keras"]):
        rc, _, stderr = run_cli([*command, "--data", empty])
        assert rc == EXIT_DATASET, stderr
        assert str(empty) in stderr and "no usable rows" in stderr and f"{empty}:2:" in stderr
    assert not (tmp_path / "r").exists()  # nothing was written for a dataset that cannot be used
    x, y = make_faces(1)
    root = write_folder(tmp_path / "tree", x, y, ["train"] * 7)
    (root / "train" / "bored").mkdir()
    rc, _, stderr = run_cli(["train", "--data", root, "--out", tmp_path / "r2", *QUICK])
    assert rc == EXIT_DATASET
    assert str(root / "train" / "bored") in stderr and "angry, disgust, fear, happy, sad, surprise, neutral" in stderr
    rc, _, stderr = run_cli(["train", "--data", tmp_path / "missing.csv", "--out", tmp_path / "r3", *QUICK])
    assert rc == EXIT_DATASET and "missing.csv" in stderr


def test_usage_and_model_errors_fail_before_any_work(data, tmp_path):
    common = ["--data", data["csv"], "--out", tmp_path / "r", "--checkpoint-dir", tmp_path / "c"]
    rc, _, stderr = run_cli(["train", *common, "--arch", "vgg-huge"])
    assert rc == EXIT_USAGE and "vgg-m" in stderr
    rc, _, stderr = run_cli(["train", *common, "--epochs", "0"])
    assert rc == EXIT_USAGE and "--epochs" in stderr
    rc, _, stderr = run_cli(["train", *common, "--teacher", "wise"])
    assert rc == EXIT_MODEL and "fast, accurate" in stderr
    assert not (tmp_path / "r").exists()
    # Distillation options without a teacher, or copies for a teacher mode that makes none, changed nothing
    rc, _, stderr = run_cli(["train", *common, "--temperature", "2", "--distill-weight", "0.9"])
    assert rc == EXIT_USAGE and ("--temperature and --distill-weight shape distillation from a teacher, and no "
                                 "--teacher was given") in stderr
    rc, _, stderr = run_cli(["train", *common, "--teacher", "fast", "--teacher-views", "8"])
    assert rc == EXIT_USAGE and "--teacher-views 8 counts the cached copies of --teacher-mode views; the teacher " \
                                "mode is 'online'" in stderr
    # evaluate's seed as train's: -1 had gone through to NumPy's generator, a traceback and exit 70 after Keras
    rc, _, stderr = run_cli(["evaluate", "--data", data["csv"], "--seed", "-1"])
    assert rc == EXIT_USAGE and "--seed must lie in [0, 2**32), got -1" in stderr


def test_a_finished_run_is_not_overwritten_without_asking(trained, data):
    argv = ["train", "--data", data["csv"], "--out", trained["out"], "--checkpoint-dir", trained["ckpt"],
            "--epochs", "1", *QUICK]
    rc, _, stderr = run_cli(argv)
    assert rc == EXIT_USAGE and "--resume" in stderr and "--overwrite" in stderr
    # A checkpoint made with another architecture cannot be resumed.
    rc, _, stderr = run_cli([*argv, "--resume", "--arch", "vgg-small"])
    assert rc == EXIT_USAGE and "--arch 'tiny' -> 'vgg-small'" in stderr
    # Nor one made from other data: another seed (another split, other batches) or other --faces.
    rc, _, stderr = run_cli([*argv, "--resume", "--seed", "7"])
    assert rc == EXIT_USAGE and "seed 0 -> 7" in stderr
    # The CLI refuses --faces detect for a CSV at once; the library checks the checkpoint's settings first.
    rc, _, stderr = run_cli([*argv, "--resume", "--faces", "detect"])
    assert rc == EXIT_USAGE and "--faces detect applies to image folders" in stderr
    from fer_batch.errors import UsageError
    from fer_batch.training.train import TrainConfig, train

    resumed = TrainConfig.paper(data=str(data["csv"]), out=str(trained["out"]), checkpoint_dir=str(trained["ckpt"]),
                                arch="tiny", batch_size=4, learning_rate=0.01, epochs=1, resume=True, faces="detect")
    with pytest.raises(UsageError, match="faces 'as-is' -> 'detect'"):
        train(resumed, verbose=0)
    # A run recorded before --faces existed resized its images as they were: the same check applies.
    config_json = trained["out"] / "config.json"
    original = config_json.read_text()
    meta = json.loads(original)
    del meta["config"]["faces"]
    config_json.write_text(json.dumps(meta))
    try:
        with pytest.raises(UsageError, match="faces 'as-is' -> 'detect'"):
            train(resumed, verbose=0)
    finally:
        config_json.write_text(original)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no file can be created")
def test_outputs_that_cannot_be_written_are_usage_errors(trained, data):
    # /proc refuses new files even to root, as a read-only mount would; chmod cannot show this under root.
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", "/proc/fer-batch-run", *QUICK])
    assert rc == EXIT_USAGE and "--out '/proc/fer-batch-run': cannot write in '/proc'" in stderr
    rc, _, stderr = run_cli(["evaluate", "--model", trained["out"] / "model.keras", "--data", data["csv"],
                             "--out", "/proc/fer-batch-eval"])
    assert rc == EXIT_USAGE and "cannot write in '/proc'" in stderr


def test_outputs_inside_the_data_or_over_a_training_run_are_refused(trained, data, tmp_path):
    """A run's --out inside its image folder was read back as a class folder ("unknown emotion folder 'run1'") or,
    inside a class folder, its PNGs as faces; evaluate --out into a training run replaced that run's metrics.json."""
    x, y = make_faces(2, seed=4)
    folder = write_folder(tmp_path / "faces", x, y)
    for option, extra in (("--out", []), ("--checkpoint-dir", ["--out", tmp_path / "run"])):
        inside = folder / "happy" / "run"
        rc, _, stderr = run_cli(["train", "--data", folder, *extra, option, inside, *QUICK])
        assert rc == EXIT_USAGE and f"{option} '{inside}' lies inside --data '{folder}'" in stderr, stderr
    assert sorted(p.name for p in (folder / "happy").iterdir()) == ["0003.png", "0010.png"]
    before = (trained["out"] / "metrics.json").read_bytes()
    rc, _, stderr = run_cli(["evaluate", "--model", trained["out"] / "model.keras", "--data", data["csv"],
                             "--out", trained["out"]])
    assert rc == EXIT_USAGE and f"--out '{trained['out']}' holds a training run" in stderr
    assert (trained["out"] / "metrics.json").read_bytes() == before
    rc, _, stderr = run_cli(["evaluate", "--model", trained["out"] / "model.keras", "--data", folder,
                             "--out", folder / "eval"])
    assert rc == EXIT_USAGE and "lies inside --data" in stderr


class _InterruptAfterFirstEpoch:
    """A Keras callback that stops the run as Ctrl-C would, once epoch 1 is checkpointed."""

    def __new__(cls):
        import keras

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0:
                    raise KeyboardInterrupt

        return Interrupt()


@pytest.mark.parametrize("arch", ["tiny", "vgg-tiny"])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(data, tmp_path, arch):
    """What --resume guarantees: same weights, optimizer state and schedule step, so the same result.

    The default recipe (warm-up, then cosine decay over all epochs) is used: the schedule is a function of the
    optimizer's step count, which the checkpoint restores, so the resumed epoch runs at the rates it would have.
    Batch order, augmentation and mixup are functions of (seed, epoch, batch), so the resumed epoch also sees the
    very batches it would have seen; `vgg-tiny` adds dropout, whose masks must be the same too.
    """
    from fer_batch.classify import load_keras_model
    from fer_batch.training.train import TrainConfig, train

    opts = ["--arch", arch, "--batch-size", "8", "--optimizer", "adam", "--lr", "0.01", "--mixup", "0.2",
            "--tta", "none", "--epochs", "2"]
    a_out, a_ckpt = tmp_path / "a", tmp_path / "a_ckpt"
    config = TrainConfig(data=str(data["csv"]), out=str(a_out), checkpoint_dir=str(a_ckpt), arch=arch,
                         batch_size=8, optimizer="adam", learning_rate=0.01, mixup=0.2, tta="none", epochs=2)
    assert config.augment == "standard" and config.warmup_epochs == 1.0 and not config.paper_recipe
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with pytest.raises(KeyboardInterrupt):
            train(config, verbose=0, callbacks=[_InterruptAfterFirstEpoch()])
    assert [r["epoch"] for r in _history(a_out / "history.csv")] == ["0"]
    assert not (a_out / "model.keras").exists()
    assert json.loads((a_ckpt / "backup" / "training_metadata.json").read_text())["epoch"] == 1

    rc, stdout, stderr = run_cli(["train", "--data", data["csv"], "--out", a_out, "--checkpoint-dir", a_ckpt,
                                  "--resume", *opts])
    assert rc == EXIT_OK, stderr
    assert "resuming from the end of epoch 1" in stderr and "Epoch 1/2" not in stdout
    b_out = tmp_path / "b"
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", b_out, "--checkpoint-dir", tmp_path / "b_ckpt",
                             *opts])
    assert rc == EXIT_OK, stderr

    resumed, straight = _history(a_out / "history.csv"), _history(b_out / "history.csv")
    assert [r["epoch"] for r in resumed] == ["0", "1"]
    # Each epoch's cost, one row an epoch across the interruption (the interrupted run's row kept, not redone).
    times = _history(a_out / "epoch_times.csv")
    assert [r["epoch"] for r in times] == ["0", "1"] == [r["epoch"] for r in _history(b_out / "epoch_times.csv")]
    assert all(float(r["wall_s"]) > 0 and float(r["cpu_s"]) > 0 for r in times)
    for r, s in zip(resumed, straight, strict=True):
        for key in ("loss", "val_loss", "accuracy"):
            assert float(r[key]) == pytest.approx(float(s[key]), rel=1e-4, abs=1e-5), (r, s)
    wa = load_keras_model(a_out / "model.keras").get_weights()
    wb = load_keras_model(b_out / "model.keras").get_weights()
    for x, y in zip(wa, wb):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_resume_with_more_epochs_continues_with_a_recomputed_schedule(data, tmp_path):
    """``--epochs 1`` then ``--resume --epochs 2``: continues (no restart), with a warning about the schedule.

    It is not the same as an uninterrupted 2-epoch run: the first epoch's cosine decay already reached 0.
    """
    opts = ["--arch", "tiny", "--batch-size", "8", "--optimizer", "adam", "--lr", "0.01", "--augment", "none",
            "--tta", "none"]
    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    common = ["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt, *opts]
    rc, _, stderr = run_cli([*common, "--epochs", "1"])
    assert rc == EXIT_OK, stderr
    assert re.search(r"^faces: train \d+ \(angry \d+, .*\); val \d+ \(", stderr, re.M), stderr
    first = _history(out / "history.csv")
    rc, stdout, stderr = run_cli([*common, "--epochs", "2", "--resume"])
    assert rc == EXIT_OK, stderr
    assert "--epochs changed from 1 to 2" in stderr and "resuming from the end of epoch 1" in stderr
    rows = _history(out / "history.csv")
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert rows[0] == first[0]  # epoch 1 was not redone
    assert json.loads((ckpt / "backup" / "training_metadata.json").read_text())["epoch"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2
    # Resuming a finished run trains nothing more and leaves its history alone.
    rc, _, stderr = run_cli([*common, "--epochs", "2", "--resume"])
    assert rc == EXIT_OK and len(_history(out / "history.csv")) == 2
    # Another recipe is another run: refused by name, not continued on a different learning-rate curve.
    changed = [*common[:-len(opts)], *[("0.02" if o == "0.01" else o) for o in opts]]
    rc, _, stderr = run_cli([*changed, "--epochs", "2", "--resume"])
    assert rc == EXIT_USAGE and "--lr 0.01 -> 0.02" in stderr
    # Other data would train the checkpoint on other faces: refused, with what differs; a moved copy resumes.
    fewer = tmp_path / "fewer.csv"
    lines = Path(data["csv"]).read_text().splitlines()
    fewer.write_text("\n".join(lines[:-3]) + "\n")
    rc, _, stderr = run_cli([*[str(fewer) if a == data["csv"] else a for a in common], "--epochs", "2", "--resume"])
    assert rc == EXIT_USAGE and f"--resume: --data {str(fewer)!r} is not the data the checkpoint" in stderr, stderr
    moved = tmp_path / "moved.csv"
    moved.write_bytes(Path(data["csv"]).read_bytes())
    rc, _, stderr = run_cli([*[str(moved) if a == data["csv"] else a for a in common], "--epochs", "2", "--resume"])
    assert rc == EXIT_OK and len(_history(out / "history.csv")) == 2, stderr
    # A resume that looks for the checkpoint elsewhere (--checkpoint-dir forgotten) is told where it is, and one of a
    # finished run whose checkpoint is gone is refused: neither trains from epoch 1 over the finished model.
    before = (out / "model.keras").read_bytes()
    elsewhere = [a for a in common if a not in ("--checkpoint-dir", ckpt)]
    rc, _, stderr = run_cli([*elsewhere, "--epochs", "2", "--resume"])
    assert rc == EXIT_USAGE and f"pass --checkpoint-dir {ckpt.resolve()}" in stderr, stderr
    import shutil

    shutil.rmtree(ckpt)
    rc, _, stderr = run_cli([*common, "--epochs", "2", "--resume"])
    assert rc == EXIT_USAGE and "holds a finished run" in stderr, stderr
    assert (out / "model.keras").read_bytes() == before
    # Starting again leaves nothing of the earlier run that could pass for the new one's.
    (out / "confusion_test_no_tta.png").write_bytes(b"from an earlier run")
    rc, _, stderr = run_cli([*common, "--epochs", "1", "--overwrite"])
    assert rc == EXIT_OK, stderr
    assert not (out / "confusion_test_no_tta.png").exists() and len(_history(out / "history.csv")) == 1
    assert len(json.loads((out / "metrics.json").read_text())["history"]["loss"]) == 1


def test_distillation_from_a_teacher(trained, data, tmp_path):
    out = tmp_path / "student"
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", tmp_path / "c",
                             "--teacher", trained["out"] / "model.keras", "--epochs", "1", "--tta", "none",
                             "--mixup", "0.2", *QUICK])
    assert rc == EXIT_OK, stderr
    rows = _history(out / "history.csv")
    # KL divergence to the teacher (x T^2) blended with the labels' cross-entropy: finite, and not the
    # teacher-entropy-inflated value of a plain cross-entropy to soft targets.
    assert 0 <= float(rows[0]["loss"]) < 10
    from fer_batch.classify import load_keras_model

    student = load_keras_model(out / "model.keras")
    assert student.name == "tiny"  # the student alone is saved, not the teacher


def test_distillation_from_cached_teacher_probabilities(trained, data, tmp_path):
    out = tmp_path / "student"
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", tmp_path / "c",
                             "--teacher", trained["out"] / "model.keras", "--teacher-mode", "cached", "--epochs", "1",
                             "--tta", "none", *QUICK])
    assert rc == EXIT_OK, stderr
    assert "caching the teacher's probabilities for 154 train faces" in stderr
    assert "for 56 val faces" in stderr
    rows = _history(out / "history.csv")
    assert 0 <= float(rows[0]["loss"]) < 10 and 0 <= float(rows[0]["accuracy"]) <= 1
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["teacher_mode"] == "cached"


def test_a_torn_cache_of_teacher_probabilities_is_computed_again(trained, data, tmp_path):
    """A run stopped while writing the cache left a torn file before writes were atomic: a resume recomputes it
    instead of failing on a bad zip, and the file it writes reads back whole."""
    import numpy as np

    from fer_batch.training.distillation import cached_teacher

    faces = {"train": data["x"][:5, :, :, None], "val": data["x"][5:8, :, :, None]}
    cache = tmp_path / "teacher_probs.npz"
    fresh = cached_teacher(trained["out"] / "model.keras", faces, cache, reuse=False)
    assert not list(tmp_path.glob("*.part.npz"))
    cache.write_bytes(cache.read_bytes()[:100])  # cut short
    again = cached_teacher(trained["out"] / "model.keras", faces, cache, reuse=True)
    for split in faces:
        assert again[split].shape == (len(faces[split]), 7)
        np.testing.assert_allclose(again[split], fresh[split], atol=1e-6)
    with np.load(cache) as saved:
        np.testing.assert_allclose(saved["train"], fresh["train"], atol=1e-6)


def test_distillation_from_cached_teacher_views_and_resume(trained, data, tmp_path):
    out, ckpt = tmp_path / "student", tmp_path / "c"
    common = ["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt, "--teacher",
              trained["out"] / "model.keras", "--teacher-mode", "views", "--teacher-views", "2", "--tta", "none",
              "--arch", "tiny", "--batch-size", "16", "--augment", "crop-erase", "--augment-engine", "opencv"]
    rc, _, stderr = run_cli([*common, "--epochs", "1"])
    assert rc == EXIT_OK, stderr
    assert "teacher: view 1 of 2 (154 faces)" in stderr and "teacher: view 2 of 2" in stderr
    assert "for 56 val faces" in stderr and "for 154 train faces" not in stderr  # train targets come from views
    with np.load(ckpt / "teacher_views.npz") as saved:
        assert saved["probs"].shape == (2, 154, 7)
        np.testing.assert_allclose(saved["probs"].sum(axis=2), 1.0, rtol=1e-4)
    # A resume finds the views' targets cached: the teacher does not run again.
    rc, _, stderr = run_cli([*common, "--epochs", "2", "--resume"])
    assert rc == EXIT_OK, stderr
    assert "resuming from the end of epoch 1" in stderr and "teacher: view" not in stderr
    assert len(_history(out / "history.csv")) == 2
    # ...and a resume with another number of views is refused before any work.
    rc, _, stderr = run_cli([*[a if a != "2" else "3" for a in common], "--epochs", "3", "--resume"])
    assert rc == 2 and "--teacher-views 2 -> 3" in stderr


def test_cached_distillation_loss_is_the_online_distillers():
    """Same teacher probabilities, same student output: the cached loss equals the online distiller's."""
    import keras

    from fer_batch.training.architectures import build_model
    from fer_batch.training.distillation import cached_distillation, distiller

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 48, 48, 1)).astype("float32")
    labels = np.eye(7, dtype="float32")[rng.integers(0, 7, 6)]
    keras.utils.set_random_seed(1)
    student, teacher = build_model("tiny"), build_model("tiny")
    online = distiller(student, teacher, 4.0, 0.7, 0.1)
    y_pred = student(x)
    expected = float(keras.ops.convert_to_numpy(online.compute_loss(x=x, y=labels, y_pred=y_pred)))
    loss, _ = cached_distillation(4.0, 0.7, 0.1)
    soft = keras.ops.convert_to_numpy(teacher(x))
    got = float(keras.ops.convert_to_numpy(loss(np.concatenate([labels, soft], axis=1), y_pred)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_init_starts_from_a_saved_models_weights(trained, data, tmp_path):
    import keras

    from fer_batch.classify import load_keras_model
    from fer_batch.training.train import TrainConfig, train

    source = load_keras_model(trained["out"] / "model.keras")  # flip-TTA wrapper around the tiny net
    expected = [layer for layer in source.layers if isinstance(layer, keras.Model)][0].get_weights()
    seen = []

    class FirstWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.extend(self.model.get_weights())

    config = TrainConfig.paper(data=str(data["csv"]), out=str(tmp_path / "ft"), arch="tiny", epochs=1, batch_size=4,
                               init=str(trained["out"] / "model.keras"), checkpoint_dir=str(tmp_path / "c"))
    train(config, verbose=0, callbacks=[FirstWeights()])
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected):
        np.testing.assert_array_equal(got, want)


def test_init_from_an_int8_quantized_model_dequantizes_its_kernels(tmp_path):
    """`accurate` ships with int8 dense kernels (Model.quantize), which list their weights in another order and
    add scales; --init must still give the float network that predicts as the quantized one does."""
    from fer_batch.training.architectures import build_model
    from fer_batch.training.saved_models import load_initial_weights

    quantized = build_model("tiny")
    quantized.set_weights([w + 0.01 * np.random.default_rng(i).standard_normal(w.shape).astype("float32")
                           for i, w in enumerate(quantized.get_weights())])
    quantized.quantize("int8")
    assert any(w.path.endswith("kernel_scale") for w in quantized.weights)
    quantized.save(tmp_path / "q.keras")
    net = build_model("tiny")
    load_initial_weights(net, tmp_path / "q.keras", "q.keras")
    faces = np.random.default_rng(0).uniform(0, 255, (32, 48, 48, 1)).astype("float32")
    want = quantized.predict(faces, verbose=0)
    got = net.predict(faces, verbose=0)
    # Only the int8 rounding of each face's activations at the dense layers separates the two.
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95


def test_init_from_another_architecture_is_a_usage_error_before_an_overwrite_deletes_anything(data, tmp_path):
    """The mismatch was found after the data was read and after --overwrite had deleted the earlier run's record;
    the message named the network's Keras name (vgg_small) where --arch takes vgg-small."""
    from importlib.resources import files

    earlier = tmp_path / "x"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    (earlier / "model.keras").write_bytes(b"an earlier run's")
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", earlier, "--checkpoint-dir", tmp_path / "c",
                             "--init", "fast", "--epochs", "1", "--overwrite", *QUICK])
    assert rc == EXIT_USAGE
    arch = json.loads(files("fer_batch.models").joinpath("fast.json").read_text())["arch"]
    assert (f"--init 'fast': its network ({arch.replace('-', '_')}," in stderr
            and "does not match --arch tiny (" in stderr and f"; pass --arch {arch}, which builds it" in stderr)
    assert sorted(p.name for p in earlier.iterdir()) == ["metrics.json", "model.keras"]
    assert "faces: " not in stderr  # refused before the data was read (it says how many faces each split has)
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", tmp_path / "y", "--checkpoint-dir",
                             tmp_path / "c", "--init", "accurate", "--arch", arch, "--epochs", "1", *QUICK])
    assert rc == EXIT_USAGE and "it is an ensemble of 2 networks, and --init starts one network" in stderr


def test_recipe_paper_and_overrides():
    from fer_batch.cli.train import config_from_args

    parser = build_parser()
    config = config_from_args(parser.parse_args(["train", "--data", "d.csv", "--out", "o", "--recipe", "paper"]))
    assert (config.arch, config.epochs, config.optimizer, config.lr, config.augment, config.tta) == \
        ("seed", 20, "adam", 1e-3, "none", "none")
    assert config.paper_recipe and config.label_smoothing == 0.0
    config = config_from_args(parser.parse_args(["train", "--data", "d.csv", "--out", "o", "--recipe", "paper",
                                                 "--epochs", "3", "--arch", "tiny", "--lr", "0.5"]))
    assert (config.arch, config.epochs, config.lr, config.optimizer) == ("tiny", 3, 0.5, "adam")
    default = config_from_args(parser.parse_args(["train", "--data", "d.csv", "--out", "o"]))
    assert (default.arch, default.optimizer, default.tta, default.paper_recipe) == ("vgg-m", "sgd", "flip", False)


def test_help_lists_every_architecture(capsys):
    from fer_batch.cli.train import ARCH_HELP
    from fer_batch.training.architectures import ARCHITECTURES

    assert list(ARCH_HELP) == list(ARCHITECTURES)
    from fer_batch.cli.train import SPLIT_CHOICES
    from fer_batch.training.evaluate import SPLIT_CHOICES as EVALUATED

    assert SPLIT_CHOICES == EVALUATED
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for name in ARCHITECTURES:
        assert name in text
    for option in ("--resume", "--checkpoint-dir", "--recipe", "--teacher", "--tta", "--mixup"):
        assert option in text


def test_training_rows_only_trains_without_validation(tmp_path):
    x, y = make_faces(3, seed=2)
    path = write_csv(tmp_path / "train_only.csv", x, y, ["Training"] * len(y))
    out = tmp_path / "run"
    rc, _, stderr = run_cli(["train", "--data", path, "--out", out, "--checkpoint-dir", tmp_path / "c",
                             "--epochs", "1", *QUICK])
    assert rc == EXIT_OK, stderr
    assert (f"note: {path} gives no validation faces (no val/ folder, nor Usage=PublicTest rows): the run trains "
            "without measuring itself") in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["splits"] == {} and len(metrics["history"]["loss"]) == 1
    assert "val_loss" not in metrics["history"]  # CSVLogger's "NA" placeholders are not numbers
    assert (out / "curves.png").is_file() and (out / "model.keras").is_file()
    # Nothing to evaluate but training rows: evaluate says so instead of silently scoring the training set.
    rc, _, stderr = run_cli(["evaluate", "--model", out / "model.keras", "--data", path])
    assert rc == EXIT_USAGE and "--split train" in stderr
    rc, stdout, _ = run_cli(["evaluate", "--model", out / "model.keras", "--data", path, "--split", "train"])
    assert rc == EXIT_OK and "(n=21)" in stdout


def test_a_holdout_too_small_to_hold_a_face_is_said_and_not_evaluated_as_0_percent(tmp_path):
    """Two faces a class: the 80/20 holdout rounds to none of each. Training went on without a word (and printed
    "val 0 (; none of angry, ...)"); evaluate --split val scored 0.0000 over n=0 and exited 0."""
    x, y = make_faces(2, seed=3)
    folder = write_folder(tmp_path / "faces", x, y)
    out = tmp_path / "run"
    rc, _, stderr = run_cli(["train", "--data", folder, "--out", out, "--checkpoint-dir", tmp_path / "c",
                             "--epochs", "1", *QUICK])
    assert rc == EXIT_OK, stderr
    assert "; val 0\n" in stderr and "the seeded 80/20 holdout takes a fifth of each class, rounded" in stderr
    rc, stdout, stderr = run_cli(["evaluate", "--model", out / "model.keras", "--data", folder, "--split", "val"])
    assert rc == EXIT_DATASET and f"--split val: {folder} has no faces in its val split" in stderr, stdout


def test_history_rows_of_an_unfinished_epoch_are_dropped_on_resume(tmp_path):
    """A crash after an epoch's history row but before its checkpoint: the resumed run redoes that epoch once."""
    from fer_batch.training.checkpoints import read_history, truncate_history

    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.2,1.9,0.2,1.8\n1,0.3,1.7,0.3,1.6\n"
                    "2,0.4,1.5,NA,NA\n")
    truncate_history(path, 2)  # the checkpoint holds 2 finished epochs
    assert [r["epoch"] for r in _history(path)] == ["0", "1"]
    assert read_history(path) == {"accuracy": [0.2, 0.3], "loss": [1.9, 1.7], "val_accuracy": [0.2, 0.3],
                                   "val_loss": [1.8, 1.6]}


def test_help_defaults_are_trainconfig_defaults():
    import dataclasses

    from fer_batch.cli.train import DEFAULTS
    from fer_batch.training.train import TrainConfig

    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert {k: fields[k] for k in DEFAULTS} == DEFAULTS


def test_ship_model_strips_tta_and_quantizes_into_a_card(trained, data, tmp_path):
    """training/ship_model.py: the shipped file is the network without its TTA wrapper, int8 where it has Dense
    kernels, and the card's figures are those of the file that ships, re-measured on the PublicTest rows."""
    import subprocess
    import sys
    from pathlib import Path

    from fer_batch.classify import load_keras_model
    from fer_batch.training.train import tta_inner

    script = Path(__file__).resolve().parents[1] / "training" / "ship_model.py"
    proc = subprocess.run([sys.executable, str(script), str(trained["out"]), "fast", "--status", "interim",
                           "--command", "fer-batch train ...", "--strip-tta", "--quantize", "int8",
                           "--data", str(data["csv"]), "--dest", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((tmp_path / "fast.json").read_text())
    assert card["tta"] == "none" and card["quantization"].startswith("int8")
    run_metrics = json.loads((trained["out"] / "metrics.json").read_text())["splits"]
    assert card["publictest_accuracy_with_flip_tta"] == round(run_metrics["val"]["accuracy"], 4)

    shipped = load_keras_model(tmp_path / "fast.keras")
    assert tta_inner(shipped) is shipped  # no wrapper left
    x_val, y_val = _independent_val(data)
    acc = float((np.asarray(shipped.predict_on_batch(x_val.astype("float32"))).argmax(1) == y_val).mean())
    assert card["publictest_accuracy"] == round(acc, 4) == card["publictest_accuracy_without_tta"]
    # The float figure it was quantized from keeps its own per-class table; int8's is the one it ships with.
    floats = card["float_publictest_per_class"]
    assert sum(round(r["recall"] * r["support"]) for r in floats.values()) == round(
        card["float_publictest_accuracy"] * len(y_val))
    ints = card["publictest_per_class"]
    assert sum(round(r["recall"] * r["support"]) for r in ints.values()) == round(acc * len(y_val))


def test_precision_mixed_bfloat16_trains_and_saves_a_float32_model(data, tmp_path):
    """--precision mixed_bfloat16: the network computes in bf16 while training, the head stays float32, the saved
    model is all float32 (what analyze and TFLite expect), Keras's global policy is given back, and a resume under
    another precision is refused by name."""
    import keras

    from fer_batch.classify import load_keras_model
    from fer_batch.training.saved_models import tta_inner

    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    before = keras.config.dtype_policy().name
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt, "--epochs", "1",
                             "--precision", "mixed_bfloat16", "--tta", "flip", *QUICK])
    assert rc == EXIT_OK, stderr
    assert keras.config.dtype_policy().name == before
    model = load_keras_model(out / "model.keras")
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"float32"}
    assert json.loads((out / "config.json").read_text())["config"]["precision"] == "mixed_bfloat16"
    faces = data["x"][..., None].astype("float32")
    assert np.asarray(model.predict(faces, verbose=0)).dtype == np.float32
    probs = np.asarray(tta_inner(model).predict(faces, verbose=0))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # The float32 network scores the validation faces as the bf16 one did at the end of training (its history,
    # without TTA), to bf16's rounding.
    val = np.array([u == "PublicTest" for u in data["usage"]])
    accuracy = float((probs[val].argmax(1) == data["y"][val]).mean())
    assert abs(accuracy - float(_history(out / "history.csv")[-1]["val_accuracy"])) <= 0.1
    # The report's figure without TTA is that float32 network's, the one in model.keras.
    no_tta = json.loads((out / "metrics.json").read_text())["splits"]["val_no_tta"]["accuracy"]
    assert no_tta == pytest.approx(accuracy, abs=1e-9)
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt, "--epochs", "2",
                             "--resume", *QUICK])
    assert rc == EXIT_USAGE
    assert "precision 'mixed_bfloat16' -> 'float32'" in stderr


def test_a_checkpoint_cut_off_while_written_resumes_from_the_previous_epoch(tmp_path):
    """double_checkpoint keeps the previous epoch's files; latest ones that do not read back whole (a kill while
    they were written) are replaced by those before the resume counts its epochs."""
    import keras

    from fer_batch.errors import UsageError

    from fer_batch.training.architectures import build_model
    from fer_batch.training.checkpoints import METADATA, PREVIOUS, WEIGHTS, backup_epoch

    backup = tmp_path / "backup"
    backup.mkdir()
    model = build_model("tiny")
    model.save_weights(backup / WEIGHTS)  # as BackupAndRestore does: the previous copy is the latest, copied first
    (backup / WEIGHTS).rename(backup / f"{WEIGHTS}{PREVIOUS}")
    (backup / f"{METADATA}{PREVIOUS}").write_text(json.dumps({"epoch": 4, "batch": 0}))
    model.save_weights(backup / WEIGHTS)
    (backup / METADATA).write_text(json.dumps({"epoch": 5, "batch": 0}))
    assert backup_epoch(backup) == 5  # intact: untouched
    whole = (backup / WEIGHTS).read_bytes()
    (backup / WEIGHTS).write_bytes(whole[: len(whole) // 3])  # cut off mid-write
    assert backup_epoch(backup) == 4
    assert (backup / WEIGHTS).read_bytes() == (backup / f"{WEIGHTS}{PREVIOUS}").read_bytes()
    keras.Model.load_weights(build_model("tiny"), backup / WEIGHTS)  # loads again
    # Stopped between the weights and their record: epoch 5's weights beside epoch 4's record (also in the copy).
    keras.utils.set_random_seed(1)
    build_model("tiny").save_weights(backup / WEIGHTS)
    newer = (backup / WEIGHTS).read_bytes()
    (backup / METADATA).write_text(json.dumps({"epoch": 4, "batch": 0}))
    assert backup_epoch(backup) == 4
    assert (backup / WEIGHTS).read_bytes() == (backup / f"{WEIGHTS}{PREVIOUS}").read_bytes() != newer
    assert backup_epoch(backup) == 4  # the two pairs now agree: nothing more to repair
    (backup / METADATA).write_text('{"epoch": ')  # metadata cut off, no intact previous pair left to use
    (backup / f"{WEIGHTS}{PREVIOUS}").write_bytes(b"")
    with pytest.raises(UsageError, match="does not read back .* start again without --resume"):
        backup_epoch(backup)


def test_a_resume_without_a_whole_first_checkpoint_starts_over(data, tmp_path):
    """Killed while its first checkpoint was written (weights there, no record yet): --resume starts again, and the
    weights left there are not loaded, so the run equals one that never started before."""
    import keras

    from fer_batch.training.architectures import build_model
    from fer_batch.training.checkpoints import WEIGHTS

    common = ["--epochs", "1", "--tta", "none", *QUICK]
    ckpt = tmp_path / "ckpt"
    (ckpt / "backup").mkdir(parents=True)
    keras.utils.set_random_seed(123)
    stray = build_model("tiny")
    stray.compile(optimizer="adam", loss="categorical_crossentropy")
    stray.save_weights(ckpt / "backup" / WEIGHTS)
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", tmp_path / "a", "--checkpoint-dir", ckpt,
                             "--resume", *common])
    assert rc == EXIT_OK, stderr
    assert "starting from epoch 1" in stderr
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", tmp_path / "b", "--checkpoint-dir",
                             tmp_path / "b_ckpt", *common])
    assert rc == EXIT_OK, stderr
    from fer_batch.classify import load_keras_model

    for a, b in zip(load_keras_model(tmp_path / "a" / "model.keras").get_weights(),
                    load_keras_model(tmp_path / "b" / "model.keras").get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_resume_with_fewer_epochs_than_done_or_other_faces_is_refused(data, tmp_path):
    """--epochs below the epochs the checkpoint completed would train nothing and save the longer run under the
    shorter name; data with as many faces a split and class but other faces would go on training on other faces."""
    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    common = ["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt, "--tta", "none", *QUICK]
    assert run_cli([*common, "--epochs", "2"])[0] == EXIT_OK
    rc, _, stderr = run_cli([*common, "--epochs", "1", "--resume"])
    assert rc == EXIT_USAGE
    assert f"--epochs 1: the checkpoint in {ckpt} has already completed 2 epochs; resume with --epochs 2" in stderr
    x, y = make_faces(N_PER_CLASS, seed=2)  # as many faces a class and split as data["csv"], other faces
    usage = ["Training" if i < 7 * TRAIN_PER_CLASS else "PublicTest" for i in range(len(y))]
    other = write_csv(tmp_path / "other.csv", x, y, usage)
    rc, _, stderr = run_cli(["train", "--data", other, "--out", out, "--checkpoint-dir", ckpt, "--tta", "none",
                             *QUICK, "--epochs", "2", "--resume"])
    assert rc == EXIT_USAGE and f"--data {str(other)!r} holds other faces than the checkpoint" in stderr, stderr


def test_a_fresh_run_starts_over_a_damaged_checkpoint(data, tmp_path):
    """A kill during the first epoch's save leaves a damaged checkpoint with no previous copy: a fresh run (no
    --resume, with --overwrite) deletes it and trains, as the refused resume's message says to do."""
    from fer_batch.training.checkpoints import METADATA, WEIGHTS

    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    (ckpt / "backup").mkdir(parents=True)
    (ckpt / "backup" / WEIGHTS).write_bytes(b"cut off")
    (ckpt / "backup" / METADATA).write_text('{"epoch": ')
    common = ["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt, "--epochs", "1", "--tta", "none",
              *QUICK]
    rc, _, stderr = run_cli([*common, "--resume"])
    assert rc == EXIT_USAGE and "does not read back" in stderr and "start again without --resume" in stderr
    rc, _, stderr = run_cli([*common, "--overwrite"])
    assert rc == EXIT_OK, stderr
    assert json.loads((ckpt / "backup" / METADATA).read_text())["epoch"] == 1


def test_a_resume_with_the_default_rate_written_out_is_the_same_run(data, tmp_path):
    """Started without --lr (SGD's default 0.02), resumed with --lr 0.02: the same recipe, not refused."""
    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    common = ["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt, "--arch", "tiny",
              "--batch-size", "8", "--augment", "none", "--tta", "none"]
    rc, _, stderr = run_cli([*common, "--epochs", "1"])
    assert rc == EXIT_OK, stderr
    rc, _, stderr = run_cli([*common, "--epochs", "1", "--lr", "0.02", "--resume"])
    assert rc == EXIT_OK, stderr
    rc, _, stderr = run_cli([*common, "--epochs", "1", "--lr", "0.03", "--resume"])
    assert rc == EXIT_USAGE and "--lr 0.02 -> 0.03" in stderr


def test_models_shows_a_trained_run_from_its_metrics(trained):
    """`fer-batch models OUT/model.keras`: no card beside a run's model, so what the run measured on its validation
    split, per-class table included."""
    metrics = json.loads((trained["out"] / "metrics.json").read_text())
    val = metrics["splits"]["val"]
    rc, stdout, stderr = run_cli(["models", trained["out"] / "model.keras"])
    assert rc == EXIT_OK, stderr
    assert f"validation  {100 * val['accuracy']:.2f}% on {val['n']} faces" in stdout
    epochs = f"{metrics['epochs']} epoch" + ("" if metrics["epochs"] == 1 else "s")
    assert f"tiny, {epochs}, test-time views flip" in stdout, stdout
    assert "): the CSV's PublicTest rows (its Usage column)" in stdout, stdout  # the data has a Usage column
    for emotion, row in val["per_class"].items():
        assert f"  {emotion:<10}{row['precision']:>10.3f}{row['recall']:>8.3f}" in stdout


def test_a_second_training_into_the_same_run_is_refused_while_the_first_runs(data, tmp_path, monkeypatch):
    """A --resume started in a second terminal while the first still trained wrote its epochs into the same history
    (twice each); an --overwrite with another --arch crashed on the first's checkpoint."""
    import os
    import subprocess
    import sys
    import time

    from fer_batch.errors import UsageError
    from fer_batch.training.checkpoints import locked
    from fer_batch.training.train import TrainConfig, train

    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    first = TrainConfig.paper(data=str(data["csv"]), out=str(out), checkpoint_dir=str(ckpt), arch="tiny",
                              batch_size=4, learning_rate=0.01, epochs=1)
    # The first run: a process that holds the run's locks as a training does (the same call).
    code = ("import sys, time; from fer_batch.training.checkpoints import locked; "
            "from fer_batch.training.train_config import TrainConfig; "
            "c = TrainConfig(data=sys.argv[1], out=sys.argv[2], checkpoint_dir=sys.argv[3]); "
            "m = locked(c); m.__enter__(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(data["csv"]), str(out), str(ckpt)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt,
                                 "--epochs", "1", "--resume", *QUICK])
        assert rc == EXIT_USAGE and f"--out '{out}' is being written by another fer-batch run (process " \
            f"{holder.pid})" in stderr, stderr
        assert time.perf_counter() - started < 5 and not out.exists()  # said before Keras or the data
        # The same folder reached another way (relative, through ..) is the same lock.
        monkeypatch.chdir(tmp_path)
        with pytest.raises(UsageError, match="is being written by another fer-batch run"):
            train(TrainConfig.paper(data=str(data["csv"]), out="ckpt/../run", checkpoint_dir=str(tmp_path / "c2"),
                                    arch="tiny", batch_size=4, learning_rate=0.01, epochs=1), verbose=0)
    finally:
        holder.kill()
        holder.wait()
    # The checkpoint folder too: two runs into other --out folders but one --checkpoint-dir.
    with locked(first):
        config = TrainConfig.paper(data=str(data["csv"]), out=str(tmp_path / "other"), checkpoint_dir=str(ckpt),
                                   arch="tiny", batch_size=4, learning_rate=0.01, epochs=1)
        with pytest.raises(UsageError, match="--checkpoint-dir .* is being written by another fer-batch run"):
            train(config, verbose=0)
    # No lock file beside or inside the folders the user named; --out . and one folder for both work.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with locked(TrainConfig.paper(data=str(data["csv"]), out=".", checkpoint_dir=".")):
        pass


def test_a_training_whose_loss_becomes_nan_fails_and_saves_no_model(data, tmp_path):
    """--lr 1e6: 'loss: nan', exit 0, a model.keras of NaN weights and 13.5% in its metrics."""
    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt, "--epochs", "2",
                             "--arch", "tiny", "--batch-size", "4", "--lr", "1e6"])
    assert rc == EXIT_USAGE, stderr[-2000:]
    assert "the training loss became nan in epoch 1: the network diverged" in stderr
    assert "start again (--overwrite) with a lower --lr than 1e+06" in stderr
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()
    assert not (ckpt / "backup").exists() or not list((ckpt / "backup").glob("*.h5"))  # no NaN checkpoint


def test_checkpoints_that_outlive_their_run_folder_are_named_as_such(trained, data, tmp_path):
    """The run folder deleted, its checkpoints left in the cache: 'already holds a run' named a folder that did not
    exist."""
    import shutil

    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    shutil.copytree(trained["ckpt"], ckpt)
    rc, _, stderr = run_cli(["train", "--data", data["csv"], "--out", out, "--checkpoint-dir", ckpt,
                             "--epochs", "1", *QUICK])
    assert rc == EXIT_USAGE and f"{ckpt / 'backup'} holds the checkpoints of an earlier run of --out '{out}', " \
        "which is gone; pass --resume to continue that run, --overwrite to start again (deleting them)" in stderr
    assert "already holds a run" not in stderr


def test_every_skipped_file_is_listed_in_the_run_folder(tmp_path):
    """Only the first 20 unreadable images were named; the rest were counted and forgotten."""
    x, y = make_faces(6, seed=3)
    root = write_folder(tmp_path / "faces", x, y)
    bad = [root / "sad" / f"bad{i:02d}.png" for i in range(25)]
    for path in bad:
        path.write_bytes(b"not a png")
    out = tmp_path / "run"
    rc, _, stderr = run_cli(["train", "--data", root, "--out", out, "--checkpoint-dir", tmp_path / "ckpt",
                             "--epochs", "1", *QUICK])
    assert rc == EXIT_OK, stderr[-2000:]
    assert stderr.count("skipped: ") == 21 and f"; every one in {out / 'skipped.txt'})" in stderr
    listed = (out / "skipped.txt").read_text(encoding="utf-8").splitlines()
    assert len(listed) == 25 and all(any(str(p) in line for line in listed) for p in bad)
    rc, _, stderr = run_cli(["evaluate", "--model", out / "model.keras", "--data", root, "--out", tmp_path / "ev"])
    assert rc == EXIT_OK and len((tmp_path / "ev" / "skipped.txt").read_text().splitlines()) == 25
    rc, _, stderr = run_cli(["evaluate", "--model", out / "model.keras", "--data", root])
    assert rc == EXIT_OK and "; --out lists every one)" in stderr


def test_a_photo_given_as_the_data_is_refused_at_once(tmp_path):
    import time

    from PIL import Image

    x, _ = make_faces(1)
    Image.fromarray(x[0]).save(tmp_path / "face48.png")
    for argv in (["evaluate", "--data", tmp_path / "face48.png"],
                 ["train", "--data", tmp_path / "face48.png", "--out", tmp_path / "run", *QUICK]):
        started = time.perf_counter()
        rc, _, stderr = run_cli(argv)
        assert rc == EXIT_DATASET and "face48.png' is an image; --data takes a FER-2013 CSV" in stderr, stderr
        assert time.perf_counter() - started < 2 and not (tmp_path / "run").exists()
