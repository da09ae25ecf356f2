"""Training options for fixed-length and GPU machines: --time-budget, the OpenCV augmenter, --data-workers, and the
ensemble tool that makes a distillation teacher."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("cv2")

from fer_batch.classify import load_keras_model  # noqa: E402
from fer_batch.errors import UsageError  # noqa: E402
from fer_batch.labels import EMOTIONS  # noqa: E402
from fer_batch.training import schedules  # noqa: E402
from fer_batch.training import train as train_module  # noqa: E402
from fer_batch.training.architectures import build_augmenter, build_model  # noqa: E402
from fer_batch.training.batches import Batches  # noqa: E402
from fer_batch.training.fast_augment import OpenCVAugmenter  # noqa: E402
from fer_batch.training.schedules import time_budget, warmup_cosine  # noqa: E402
from fer_batch.training.train import TrainConfig  # noqa: E402
from fer_batch.training.views import with_views  # noqa: E402
from synthetic_faces import make_faces, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_warmup_cosine_matches_keras_cosine_decay():
    ours = warmup_cosine(0.1, 10, 100)
    theirs = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=90, warmup_target=0.1, warmup_steps=10)
    for step in (0, 5, 10, 30, 55, 99, 100, 150):
        assert _lr(ours, step) == pytest.approx(float(keras.ops.convert_to_numpy(theirs(step))), abs=1e-6)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_budget_settles_the_epochs_after_the_first_and_refits_the_schedule(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(schedules.time, "perf_counter", clock)
    steps = 20
    schedule = warmup_cosine(0.1, steps, 50 * steps)
    callback = time_budget(budget_s=100.0, steps_per_epoch=steps, max_epochs=50, schedule=schedule)
    callback.set_model(build_model("tiny"))
    callback.model.stop_training = False  # as fit() sets it
    callback.on_train_begin()
    for batch in range(steps):  # one second a step: a 20 s epoch, so 5 epochs fit in 100 s
        clock.now += 1.0
        callback.on_train_batch_end(batch)
    callback.on_epoch_end(0)
    assert callback.epochs == 5
    assert float(keras.ops.convert_to_numpy(schedule.total_steps)) == 5 * steps
    assert _lr(schedule, 5 * steps) == pytest.approx(0.0, abs=1e-7)  # the cosine now ends with the 5th epoch
    assert _lr(schedule, 3 * steps) == pytest.approx(0.05, abs=1e-6)  # halfway through the decay
    for epoch in range(1, 4):
        callback.on_epoch_end(epoch)
        assert not callback.model.stop_training
    callback.on_epoch_end(4)
    assert callback.model.stop_training


def test_time_budget_never_asks_for_more_than_the_epochs_given(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(schedules.time, "perf_counter", clock)
    callback = time_budget(budget_s=1e6, steps_per_epoch=8, max_epochs=7, schedule=warmup_cosine(0.1, 8, 56))
    callback.set_model(build_model("tiny"))
    callback.on_train_begin()
    for batch in range(8):
        clock.now += 0.01
        callback.on_train_batch_end(batch)
    callback.on_epoch_end(0)
    assert callback.epochs == 7


def test_a_tiny_time_budget_trains_one_epoch_end_to_end(tmp_path):
    x, y = make_faces(6, seed=3)
    data = write_csv(tmp_path / "faces.csv", x, y, ["Training"] * 35 + ["PublicTest"] * 7)
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), arch="tiny", epochs=30, batch_size=8,
                         time_budget_min=1e-5, augment_engine="opencv", data_workers=2,
                         checkpoint_dir=str(tmp_path / "ckpt"))
    metrics = train_module.train(config, verbose=0)
    assert metrics["epochs"] == 1
    assert not [t.name for t in threading.enumerate() if t.name.startswith("fer-batches")]  # batch threads ended
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(rows) == 2  # header + the one epoch the budget allowed
    assert load_keras_model(tmp_path / "run" / "model.keras").output_shape == (None, 7)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["epochs_settled_by_time_budget"] == 1
    # A resume must keep the length the budget settled on (its schedule ends there), and says how.
    with pytest.raises(UsageError, match="resume it with --epochs 1"):
        train_module.train(dataclasses.replace(config, time_budget_min=None, resume=True), verbose=0)
    # Stopped between the first checkpoint and that record: the length is unknown, so no resume can keep it.
    del meta["epochs_settled_by_time_budget"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="stopped before its --time-budget settled the run's length"):
        train_module.train(dataclasses.replace(config, time_budget_min=None, resume=True), verbose=0)


def test_the_schedule_total_is_read_inside_the_compiled_train_step():
    """Assigning the total after tracing must reach the step: a schedule that has ended leaves weights alone."""
    schedule = warmup_cosine(0.5, 0, 1000)
    model = build_model("tiny")
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (8, 48, 48, 1)).astype("float32")
    y = np.eye(7, dtype="float32")[np.arange(8) % 7]
    model.train_on_batch(x, y)  # traced with a total of 1000 steps: the rate is still high
    schedule.total_steps.assign(1.0)  # now the schedule has ended at step 1
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    trainable = {id(v) for v in model.trainable_variables}
    for variable, old in zip(model.weights, before):
        if id(variable) in trainable:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), old)


@pytest.mark.parametrize("overrides, message", [
    ({"time_budget_min": 0}, "--time-budget must be a positive number, got 0"),
    ({"time_budget_min": float("inf")}, "--time-budget must be a positive number, got inf"),
    ({"temperature": float("nan")}, "--temperature must be a positive number, got nan"),
    ({"learning_rate": 0.0}, "--lr must be a positive number, got 0.0"),
    ({"weight_decay": -1e-4}, "--weight-decay must be a number of at least 0, got -0.0001"),
    ({"mixup": -0.2}, "--mixup must be a number of at least 0, got -0.2"),
    ({"seed": -1}, r"--seed must lie in \[0, 2\*\*32\), got -1"),
    ({"seed": 2**32}, r"--seed must lie in \[0, 2\*\*32\), got 4294967296"),
    ({"time_budget_min": 5, "resume": True}, "cannot be combined with --resume"),
    ({"data_workers": 0}, "--data-workers must be at least 1"),
    ({"augment_engine": "pillow"}, "--augment-engine 'pillow' is not allowed"),
    ({"teacher_mode": "offline"}, "--teacher-mode 'offline' is not allowed"),
    ({"teacher_mode": "cached"}, "--teacher-mode cached needs --teacher"),
    ({"teacher": "fast", "teacher_mode": "cached", "mixup": 0.2}, "--mixup cannot be combined"),
    ({"time_budget_min": 5, "paper_recipe": True}, "the paper recipe has none"),
    ({"augment": "crop-erase"}, "add --augment-engine opencv"),
    ({"teacher": "fast", "teacher_mode": "views"}, "--teacher-mode views makes its augmented copies with the OpenCV"),
])
def test_option_errors_name_the_option(overrides, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(data="x.csv", out="run", **overrides)


def test_opencv_augmenter_is_keyed_by_its_generator_and_keeps_range():
    x = make_faces(2, seed=0)[0][:, :, :, None].astype("float32")
    augment = OpenCVAugmenter("standard")
    a = augment(x, np.random.default_rng([0, 1, 2]))
    b = augment(x, np.random.default_rng([0, 1, 2]))
    c = augment(x, np.random.default_rng([0, 1, 3]))
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255
    assert np.abs(a - x).mean() > 1.0  # it does change the faces


def test_crop_erase_is_deterministic_in_range_and_erases_inside_the_face():
    x = make_faces(64, seed=1)[0][:, :, :, None].astype("float32")
    augment = OpenCVAugmenter("crop-erase")
    a = augment(x.copy(), np.random.default_rng([3, 1, 4]))
    assert np.array_equal(a, augment(x.copy(), np.random.default_rng([3, 1, 4])))
    assert not np.array_equal(a, augment(x.copy(), np.random.default_rng([3, 1, 5])))
    assert a.shape == x.shape and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 255
    # Uniform faces stay uniform under the flips, shifts, rotations, scaling and contrast (reflected borders): a face
    # that is not was erased, about half of them (the recipe's probability 0.5).
    flat = augment(np.full((200, 48, 48, 1), 128.0, np.float32), np.random.default_rng(7))
    erased = np.ptp(flat.reshape(200, -1), axis=1) > 1
    assert 0.35 < erased.mean() < 0.65


def test_random_erase_fills_one_clipped_rectangle_of_the_allowed_area():
    from fer_batch.training.fast_augment import random_erase

    x = np.full((200, 48, 48, 1), 128.0, np.float32)
    random_erase(x, np.random.default_rng(0), 0.5, 0.02, 0.2, 0.3)
    changed = x[:, :, :, 0] != 128.0
    erased = changed.any(axis=(1, 2))
    assert 0.35 < erased.mean() < 0.65  # probability 0.5
    for mask in changed[erased]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        # one rectangle: every changed pixel lies in the bounding box, which is (nearly) all changed
        assert mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].mean() > 0.95
        assert 0.02 * 0.5 <= h * w / 48**2 <= 0.2 * 1.5  # rounding and clipping at the border move it a little


def test_crop_erase_without_rotation_scale_or_erasing_is_a_padded_crop():
    # With only the shift left, each output is a 48 px window of the face reflected by up to 4 px: a random crop
    # of the padded face (flipped or not), exactly.
    import cv2

    x = make_faces(8, seed=3)[0][:, :, :, None].astype("float32")
    augment = OpenCVAugmenter("crop-erase")
    augment.rotation = augment.zoom = augment.contrast = 0.0
    augment.erasing = None
    rng = np.random.default_rng(11)
    draws = np.random.default_rng(11)
    n = len(x)
    flip = draws.random(n) < 0.5
    draws.uniform(size=n), draws.uniform(size=n)  # angle, scale
    dx = np.round(draws.uniform(-augment.shift, augment.shift, n) * 48).astype(int)
    dy = np.round(draws.uniform(-augment.shift, augment.shift, n) * 48).astype(int)
    out = augment(x, rng)
    for i in range(n):
        face = x[i, :, :, 0][:, ::-1] if flip[i] else x[i, :, :, 0]
        padded = cv2.copyMakeBorder(np.ascontiguousarray(face), 4, 4, 4, 4, cv2.BORDER_REFLECT_101)
        crop = padded[4 - dy[i]:52 - dy[i], 4 - dx[i]:52 - dx[i]]
        inner = (slice(5, 43), slice(5, 43))  # away from sub-pixel interpolation at fractional shifts' edges
        assert np.abs(out[i, :, :, 0][inner] - crop[inner]).mean() < 12.0


def test_opencv_augmenter_without_geometry_only_mirrors():
    x = make_faces(3, seed=0)[0][:, :, :, None].astype("float32")
    augment = OpenCVAugmenter("standard")
    augment.rotation = augment.zoom = augment.shift = augment.contrast = 0.0
    out = augment(x, np.random.default_rng(7))
    same = [np.allclose(o, f, atol=1e-3) for o, f in zip(out, x)]
    mirrored = [np.allclose(o, f[:, ::-1], atol=1e-3) for o, f in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert any(same) and any(m and not s for s, m in zip(same, mirrored))


@pytest.mark.parametrize("engine", ["keras", "opencv"])
def test_batches_from_worker_threads_equal_batches_made_in_turn(engine):
    x, y = make_faces(6, seed=2)
    x = x[:, :, :, None]
    augmenter = build_augmenter("standard", seed=0) if engine == "keras" else OpenCVAugmenter("standard")
    batches = Batches(x, y, 8, augmenter, 0, 0.0, workers=3)
    batches.set_epoch(2)
    in_turn = [batches[i] for i in range(batches.num_batches)]
    threaded = [None] * batches.num_batches

    def work(indices):
        for i in indices:
            threaded[i] = batches[i]

    threads = [threading.Thread(target=work, args=(list(range(k, batches.num_batches, 3))[::-1],)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (xa, ya), (xb, yb) in zip(in_turn, threaded):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    batches.close()  # the batches queued ahead are dropped and the threads end
    assert not [t.name for t in threading.enumerate() if t.name.startswith("fer-batches")]
    np.testing.assert_array_equal(batches[0][0], in_turn[0][0])  # and a later call starts them again
    batches.close()


FIT_PROBE = """
import sys
import numpy as np
import keras
from fer_batch.training.batches import Batches, epoch_seed

seen = []
batches = Batches(np.zeros((6 * 16, 48, 48, 1), np.uint8), np.arange(6 * 16) % 7, 16, None, 0, 0.0,
                  workers=int(sys.argv[1]))
made = batches.batch
batches.batch = lambda epoch, index: (lambda b: (b[0] * 0 + 10 * epoch + index, b[1]))(made(epoch, index))


class Seen(keras.layers.Layer):
    def call(self, x):
        try:  # run_eagerly: the very batch the step trains on (building the model passes symbolic tensors)
            seen.append(int(keras.ops.convert_to_numpy(x)[0, 0, 0, 0]))
        except Exception:
            pass
        return x


inputs = keras.Input((48, 48, 1))
model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(Seen()(inputs))))
model.compile("sgd", "categorical_crossentropy", run_eagerly=True)
model.fit(batches, epochs=3, shuffle=False, verbose=0, callbacks=[epoch_seed(batches)])
print(seen)
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_fit_trains_on_each_epochs_own_batches_in_order_with_data_workers(backend):
    """What ``fit`` trains on, batch by batch, is batch i of epoch e in turn, with --data-workers 2 too, under the
    TensorFlow backend and jax (torch feeds Keras the same way). Keras's own worker queue, which Batches used to
    hand its workers to, gave jax and torch the batches of the epoch before at the start of each epoch."""
    import os
    import subprocess

    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend}
    want = [10 * epoch + index for epoch in range(3) for index in range(6)]
    for workers in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", FIT_PROBE, workers], capture_output=True, text=True, env=env,
                              timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == want, (backend, workers)


def test_make_ensemble_averages_its_members(tmp_path):
    sys.path.insert(0, str(ROOT / "training"))
    try:
        from make_ensemble import make_ensemble
    finally:
        sys.path.pop(0)
    paths = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        model = build_model("tiny")
        paths.append(tmp_path / f"m{seed}.keras")
        model.save(paths[-1])
    make_ensemble(str(tmp_path / "ensemble.keras"), [str(p) for p in paths])
    faces = np.random.default_rng(0).integers(0, 256, size=(4, 48, 48, 1), dtype=np.uint8)
    members = [np.asarray(load_keras_model(p).predict_on_batch(faces)) for p in paths]
    ensemble = np.asarray(load_keras_model(tmp_path / "ensemble.keras").predict_on_batch(faces))
    np.testing.assert_allclose(ensemble, np.mean(members, axis=0), rtol=1e-5, atol=1e-6)


def test_make_ensemble_cli_refuses_a_single_member_and_writes_nothing(tmp_path):
    import subprocess

    out = tmp_path / "teacher.keras"
    done = subprocess.run([sys.executable, str(ROOT / "training" / "make_ensemble.py"), str(out), "fast"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "an ensemble needs at least two models, got 1" in done.stderr
    assert not out.exists()


def _run_folder(run: Path, seed: int):
    """A run folder as `fer-batch train` leaves it (a flip-TTA wrapped tiny network, its metrics and config)."""
    keras.utils.set_random_seed(seed)
    net = build_model("tiny")
    run.mkdir()
    with_views(net, "flip").save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"arch": "tiny", "epochs": 1, "splits": {"val": {"accuracy": 0.1}}}))
    (run / "config.json").write_text(json.dumps({"config": {"seed": seed}, "machine": {"cpu": "test"}}))
    return net


def _ship(dest: Path, members: list, csv_path: Path, quantize: str) -> Path:
    import subprocess

    dest.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "training" / "ship_ensemble.py"), "accurate",
                           *map(str, members), "--views", "crops", "--data", str(csv_path), "--status", "interim",
                           "--command", "tiny runs", "--quantize", quantize, "--dest", str(dest)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return dest


@pytest.mark.parametrize("count", [2, 1])
def test_ship_ensemble_ships_the_mean_of_its_members_with_views_and_a_card(tmp_path, count):
    """training/ship_ensemble.py end to end on two tiny runs, and on one (a single network shipped in its views,
    as `accurate` is since 2026-12-03): the packaged file loads through the product's own loader, predicts the mean
    of its members' crop views (to int8's rounding), and its card's accuracy is what that file scores on the
    PublicTest rows."""
    from fer_batch.classify import Classifier

    x, y = make_faces(6, seed=3)
    csv_path = write_csv(tmp_path / "fer.csv", x, y, ["PublicTest"] * len(y))
    nets = [_run_folder(tmp_path / f"run{seed}", seed) for seed in range(count)]
    dest = _ship(tmp_path / "models", [tmp_path / f"run{seed}" for seed in range(count)], csv_path, "int8")
    card = json.loads((dest / "accurate.json").read_text())
    if count == 2:
        assert card["arch"] == "ensemble: tiny + tiny" and card["epochs"] == [1, 1]
    else:
        assert card["arch"] == "tiny" and card["epochs"] == 1
    assert card["tta"] == "crops"
    assert [m["training_config"]["seed"] for m in card["members"]] == list(range(count))
    classifier = Classifier(str(dest / "accurate.keras"), runtime="keras")
    names = [layer.name for layer in classifier.model.layers]
    assert ("ensemble_mean" in names) == (count > 1)  # one network ships without an averaging layer around it
    probs = classifier.predict(x[..., None])
    assert card["publictest_accuracy"] == round(float((probs.argmax(1) == y).mean()), 4)
    faces = x[..., None].astype("float32")
    want = np.mean([np.asarray(with_views(net, "crops").predict(faces, verbose=0)) for net in nets], axis=0)
    np.testing.assert_allclose(probs, want, atol=2e-3)


def test_ship_ensemble_adds_a_run_to_a_shipped_ensemble(tmp_path):
    """A shipped ensemble named as a member stands for its members (out of their views, int8-all dequantized), so
    `ship_ensemble.py accurate accurate RUN` ships the mean of all three; their cards' records come along."""
    from fer_batch.classify import Classifier

    x, y = make_faces(6, seed=3)
    csv_path = write_csv(tmp_path / "fer.csv", x, y, ["PublicTest"] * len(y))
    nets = [_run_folder(tmp_path / f"run{seed}", seed) for seed in range(3)]
    first = _ship(tmp_path / "first", [tmp_path / "run0", tmp_path / "run1"], csv_path, "int8-all")
    dest = _ship(tmp_path / "models", [first / "accurate.keras", tmp_path / "run2"], csv_path, "int8-all")
    card = json.loads((dest / "accurate.json").read_text())
    assert card["arch"] == "ensemble: tiny + tiny + tiny" and card["epochs"] == [1, 1, 1]
    assert [m["training_config"]["seed"] for m in card["members"]] == [0, 1, 2]
    assert card["members"][0]["source"] == f"{first / 'accurate.keras'}, member 0: {tmp_path / 'run0'}"
    probs = Classifier(str(dest / "accurate.keras"), runtime="keras").predict(x[..., None])
    faces = x[..., None].astype("float32")
    want = np.mean([np.asarray(with_views(net, "crops").predict(faces, verbose=0)) for net in nets], axis=0)
    np.testing.assert_allclose(probs, want, atol=3e-3)
    assert card["publictest_accuracy"] == round(float((probs.argmax(1) == y).mean()), 4)


def test_ensemble_eval_views_are_the_shipped_views():
    """training/ensemble_eval.py chooses members from cached per-view probabilities; its flip and crops means
    must be what a model wrapped by `with_views` predicts, or it would select on numbers nothing ships."""
    sys.path.insert(0, str(ROOT / "training"))
    try:
        from ensemble_eval import mean_over, view_probs
    finally:
        sys.path.pop(0)

    keras.utils.set_random_seed(0)
    net = build_model("tiny")
    faces = make_faces(3, seed=1)[0][..., None].astype("float32")
    probs = view_probs(net, faces)
    assert len(probs) == 10
    for views in ("none", "flip", "crops"):
        want = np.asarray(with_views(net, views).predict(faces, verbose=0))
        np.testing.assert_allclose(mean_over(probs, views), want, rtol=1e-5, atol=1e-6)


def _sure_of_happy(net):
    """``net`` made sure of `happy` on every face (its output bias far above the rest): int8 cannot change a class,
    so the int8 check's outcome is known before it runs."""
    bias = np.zeros(len(EMOTIONS), np.float32)
    bias[EMOTIONS.index("happy")] = 30.0
    net.get_layer("probs").bias.assign(bias)
    return net


def _tiny_run(tmp_path, seed: int, sure: bool = False):
    """A finished `fer-batch train` run as ship_model.py reads it (a tiny network in its flip wrapper, its
    metrics and config), and a FER-2013 CSV of 42 PublicTest faces: (run, csv, network, faces, labels). With
    ``sure``, the network is :func:`_sure_of_happy`."""

    x, y = make_faces(6, seed=5)
    csv_path = write_csv(tmp_path / "fer.csv", x, y, ["PublicTest"] * len(y))
    keras.utils.set_random_seed(seed)
    run = tmp_path / "run"
    run.mkdir()
    net = _sure_of_happy(build_model("tiny")) if sure else build_model("tiny")
    with_views(net, "flip").save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"arch": "tiny", "params": 1, "epochs": 1, "tta": "flip", "splits": {
        "val": {"accuracy": 0.2, "macro_f1": 0.1}, "val_no_tta": {"accuracy": 0.2, "macro_f1": 0.1}}}))
    (run / "config.json").write_text(json.dumps({"config": {}, "machine": {}}))
    return run, csv_path, net, x, y


def test_ship_model_measures_int8_tflite_and_records_it_in_the_card(tmp_path):
    """training/ship_model.py --strip-tta --tflite-int8 end to end on a tiny run: the network ships without its TTA
    wrapper, and the card gives the int8 TFLite figures it measured: a network sure of every face passes int8's bars,
    so they must be recorded."""
    import subprocess

    run, csv_path, _, _, _ = _tiny_run(tmp_path, seed=0, sure=True)
    dest = tmp_path / "models"
    dest.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "training" / "ship_model.py"), str(run), "fast", "--status",
                           "interim", "--command", "a tiny run", "--strip-tta", "--tflite-int8", "--data",
                           str(csv_path), "--dest", str(dest)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TFLite on 42 PublicTest faces: float" in done.stdout
    assert re.search(r"TFLite on \d{3} generated faces: same class", done.stdout), done.stdout
    card = json.loads((dest / "fast.json").read_text())
    assert card["tta"] == "none" and load_keras_model(dest / "fast.keras").name == "tiny"
    assert "int8 recorded in the card" in done.stdout
    assert card["tflite_quantization"] == "dynamic-int8"
    assert card["tflite_agreement_with_float"] == 1.0 and card["tflite_agreement_with_float_generated"] == 1.0


def test_ship_model_flip_margin_measures_the_second_look_as_the_classifier_runs_it(tmp_path):
    """--flip-margin halfway through the network's own margins: half the faces get a second look, so the card's
    accuracy must be that of those faces averaged with their mirror images and the rest alone, measured
    independently here; `evaluate` on the shipped file reports the same. The faces are labelled with the classes
    the second look gives, which differ from the network's own on some of them (3 with seed 4), so that a figure
    measured without the second look cannot pass for one measured with it."""
    import subprocess

    from fer_batch.training.evaluate import evaluate

    run, csv_path, net, x, y = _tiny_run(tmp_path, seed=4)
    faces = x[..., None].astype("float32")
    own, mirrored = np.asarray(net(faces)), np.asarray(net(faces[:, :, ::-1]))
    top2 = np.sort(own, axis=1)[:, -2:]
    margins = np.sort(top2[:, 1] - top2[:, 0])
    half = len(margins) // 2
    margin = float((margins[half - 1] + margins[half]) / 2)  # halfway between two faces: no rounding decides
    unsure = top2[:, 1] - top2[:, 0] < margin
    y = np.where(unsure[:, None], own + mirrored, own).argmax(axis=1)
    assert np.sum(y != own.argmax(axis=1)) >= 2
    write_csv(csv_path, x, y, ["PublicTest"] * len(y))
    want = 1.0
    dest = tmp_path / "models"
    dest.mkdir()
    ship = [sys.executable, str(ROOT / "training" / "ship_model.py"), str(run), "fast", "--status", "interim",
            "--command", "a tiny run", "--flip-margin", repr(margin), "--data", str(csv_path), "--dest", str(dest)]
    done = subprocess.run([*ship, "--strip-tta", "--tflite-int8"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((dest / "fast.json").read_text())
    assert card["flip_margin"] == margin and card["second_look_share"] == round(half / len(y), 4)
    assert card["publictest_accuracy"] == round(want, 4)
    assert card["publictest_accuracy_without_second_look"] == round(float(np.mean(own.argmax(axis=1) == y)), 4)
    assert ("tflite_second_look_share" in card) == ("tflite_quantization" in card)  # int8 measured as it runs
    # The int8 check itself judges float and int8 as the TFLite runtime runs the card: both with the second look.
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("TFLite on 42 PublicTest faces")]
    assert line.startswith(f"TFLite on 42 PublicTest faces as the TFLite runtime runs them (second look under "
                           f"{margin}): float {want:.4f}, int8 "), line
    if "tflite_quantization" in card:
        assert card["tflite_agreement_flip_margin"] == margin
    assert evaluate(dest / "fast.keras", csv_path, splits="val")["splits"]["val"]["accuracy"] == pytest.approx(want)
    recard = subprocess.run([sys.executable, str(ROOT / "training" / "ship_model.py"), "--recard-tflite-int8", "fast",
                             "--data", str(csv_path), "--dest", str(dest)], capture_output=True, text=True, timeout=600)
    assert recard.returncode == 1 and "which this check does not measure" in recard.stderr  # its figures would lie
    assert json.loads((dest / "fast.json").read_text()) == card

    # The flip-TTA model already averages every face with its mirror image: a second look is refused by name.
    still_wrapped = subprocess.run(ship, capture_output=True, text=True, timeout=600)
    assert still_wrapped.returncode == 1 and "ship it with --strip-tta" in still_wrapped.stderr
    bad = subprocess.run([*ship[:-6], "--flip-margin", "2", *ship[-4:]], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--flip-margin 2.0: expected a number in (0, 1]" in bad.stderr


def test_recard_tflite_int8_takes_a_keras_int8_model_and_drops_a_stale_request(tmp_path):
    """--recard-tflite-int8 on a model whose dense kernels Keras stored as int8 (the converter refuses those layers:
    the script must convert their float equivalent, as analyze does) and whose card already asks for int8: the card
    afterwards asks for int8 only if this check passed, with the figures of this check."""
    import subprocess

    x, y = make_faces(6, seed=5)
    csv_path = write_csv(tmp_path / "fer.csv", x, y, ["PublicTest"] * len(y))
    keras.utils.set_random_seed(0)
    model = _sure_of_happy(build_model("tiny"))  # passes int8's bars: the outcome is known
    model.quantize("int8")
    dest = tmp_path / "models"
    dest.mkdir()
    model.save(dest / "fast.keras")
    (dest / "fast.json").write_text(json.dumps({"name": "fast", "tflite_quantization": "dynamic-int8",
                                                "tflite_agreement_with_float": 0.5}))
    done = subprocess.run([sys.executable, str(ROOT / "training" / "ship_model.py"), "--recard-tflite-int8", "fast",
                           "--data", str(csv_path), "--dest", str(dest)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TFLite on 42 PublicTest faces: float" in done.stdout
    card = json.loads((dest / "fast.json").read_text())
    assert card["tflite_quantization"] == "dynamic-int8"
    assert card["tflite_agreement_with_float"] == 1.0 and card["tflite_agreement_with_float_generated"] == 1.0
    assert card["name"] == "fast"


def test_weight_average_is_the_mean_of_its_members_and_refuses_another_network():
    from fer_batch.training.ensemble import weight_average

    nets = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        nets.append(build_model("tiny"))
    soup = weight_average(nets)
    for got, *members in zip(soup.get_weights(), *(n.get_weights() for n in nets), strict=True):
        np.testing.assert_allclose(got, np.mean(members, axis=0), rtol=1e-6)
    faces = np.random.default_rng(0).integers(0, 256, size=(4, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(weight_average([nets[0], nets[0]]).predict_on_batch(faces),
                               nets[0].predict_on_batch(faces), rtol=1e-5, atol=1e-6)
    assert not np.allclose(soup.predict_on_batch(faces), nets[0].predict_on_batch(faces))
    with pytest.raises(UsageError, match=r"b is not the same network as a: other layers"):
        weight_average([nets[0], build_model("vgg-tiny")], names=["a", "b"])
    with pytest.raises(UsageError, match="at least two models, got 1"):
        weight_average(nets[:1])


def test_weight_average_refuses_other_layers_of_the_same_shapes_and_quantized_models():
    from fer_batch.training.ensemble import weight_average

    def net(last, width=3):
        inputs = keras.Input((4,))
        return keras.Model(inputs, last(keras.layers.Dense(width)(inputs)))

    relu, dropout = net(keras.layers.ReLU()), net(keras.layers.Dropout(0.5))
    assert [w.shape for w in relu.get_weights()] == [w.shape for w in dropout.get_weights()]
    with pytest.raises(UsageError, match="model 1 is not the same network as model 0: other layers"):
        weight_average([relu, dropout])
    with pytest.raises(UsageError, match=r"weight array 0 has shape \(4, 5\) against \(4, 3\)"):
        weight_average([relu, net(keras.layers.ReLU(), width=5)])
    quantized = build_model("tiny")
    quantized.quantize("int8")
    with pytest.raises(UsageError, match="model 1 is quantized"):
        weight_average([build_model("tiny"), quantized])


def _tiny_runs(tmp_path, accuracies=(0.2, 0.3)):
    """Two tiny runs, the second a pretend fine-tune of the first, with different recorded accuracies."""
    runs = []
    for seed, accuracy in enumerate(accuracies):
        (tmp_path / str(seed)).mkdir()
        run, csv_path, _, x, y = _tiny_run(tmp_path / str(seed), seed=seed)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["splits"]["val_no_tta"]["accuracy"] = accuracy
        metrics["splits"]["val"]["accuracy"] = accuracy + 0.01
        (run / "metrics.json").write_text(json.dumps(metrics))
        runs.append(run)
    return runs, csv_path, x, y


def test_make_soup_writes_a_run_that_ship_model_ships_with_its_members_named(tmp_path):
    """training/make_soup.py end to end on two tiny runs: the run folder's model holds the mean of the runs' weights,
    its PublicTest accuracy is what that file scores (measured here independently), and ship_model.py carries the
    averaged runs, as the shipped model runs them (without TTA here), into the card."""
    import subprocess

    runs, csv_path, x, y = _tiny_runs(tmp_path)
    out = tmp_path / "soup"
    done = subprocess.run([sys.executable, str(ROOT / "training" / "make_soup.py"), str(out), *map(str, runs),
                           "--data", str(csv_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"note: {runs[1]} did not start from {runs[0]}" in done.stderr
    members = [load_keras_model(run / "model.keras").get_weights() for run in runs]
    soup = load_keras_model(out / "model.keras")
    for got, *ws in zip(soup.get_weights(), *members, strict=True):
        np.testing.assert_allclose(got, np.mean(ws, axis=0), rtol=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    probs = soup.predict(x[..., None].astype("float32"), verbose=0)
    assert metrics["splits"]["val"]["accuracy"] == pytest.approx(float((probs.argmax(1) == y).mean()))
    assert metrics["soup_of"] == [str(r) for r in runs] and metrics["tta"] == "flip"
    assert json.loads((out / "config.json").read_text())["soup_of"] == metrics["soup_of"]
    dest = tmp_path / "models"
    dest.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "training" / "ship_model.py"), str(out), "fast", "--status",
                           "interim", "--command", "a tiny soup", "--strip-tta", "--data", str(csv_path), "--dest",
                           str(dest)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((dest / "fast.json").read_text())
    assert card["soup_of"] == metrics["soup_of"] and card["soup_members_publictest_accuracy"] == [0.2, 0.3]


@pytest.mark.parametrize("problem", ["arch", "no-publictest"])
def test_make_soup_refuses_what_it_cannot_measure_and_writes_nothing(tmp_path, problem):
    import subprocess

    runs, csv_path, x, y = _tiny_runs(tmp_path)
    if problem == "arch":
        metrics = json.loads((runs[1] / "metrics.json").read_text())
        (runs[1] / "metrics.json").write_text(json.dumps({**metrics, "arch": "vgg-tiny"}))
        message = f"runs differ in arch: {runs[0]} tiny, {runs[1]} vgg-tiny"
    else:
        csv_path = write_csv(tmp_path / "train-only.csv", x, y, ["Training"] * len(y))
        message = f"--data {str(csv_path)!r} has no validation faces to measure on (FER-2013's PublicTest rows"
    out = tmp_path / "soup"
    done = subprocess.run([sys.executable, str(ROOT / "training" / "make_soup.py"), str(out), *map(str, runs),
                           "--data", str(csv_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert not out.exists()


def test_ship_model_cards_give_per_class_tables_and_recard_restores_them_only_when_reproduced(tmp_path):
    """Every figure a card reports comes with its per-class table (Keras's, and int8's where int8 is asked for): the
    tables' recalls, weighted by support, give back the card's accuracies. ``--recard-per-class`` rebuilds them for a
    card without them, and refuses (card untouched) when the model does not reproduce the card's figure."""
    import subprocess

    run, csv_path, _, _, _ = _tiny_run(tmp_path, seed=4)
    dest = tmp_path / "models"
    dest.mkdir()
    ship_model = [sys.executable, str(ROOT / "training" / "ship_model.py")]
    done = subprocess.run([*ship_model, str(run), "fast", "--status", "interim", "--command", "a tiny run",
                           "--strip-tta", "--tflite-int8", "--flip-margin", "0.05", "--data", str(csv_path),
                           "--dest", str(dest)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((dest / "fast.json").read_text())
    tables = [("publictest_accuracy", "publictest_per_class")]
    if "tflite_quantization" in card:
        tables.append(("tflite_publictest_accuracy", "tflite_publictest_per_class"))
    for figure, key in tables:
        rows = card[key]
        assert list(rows) == list(EMOTIONS)
        assert sum(row["support"] for row in rows.values()) == 42
        # Whole faces, as test_shipped_models counts them: one face of 42 is 0.0238, far above any rounding.
        correct = sum(round(row["recall"] * row["support"]) for row in rows.values())
        assert correct == round(card[figure] * 42), f"{key} counts {correct} of 42 faces right, {figure} {card[figure]}"
    stripped = {k: v for k, v in card.items() if not k.endswith("per_class")}
    (dest / "fast.json").write_text(json.dumps(stripped))
    recard = [*ship_model, "--recard-per-class", "fast", "--data", str(csv_path), "--dest", str(dest)]
    again = subprocess.run(recard, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((dest / "fast.json").read_text()) == card
    wrong = stripped | {"publictest_accuracy": round(card["publictest_accuracy"] - 0.1, 4)}
    (dest / "fast.json").write_text(json.dumps(wrong))
    refused = subprocess.run(recard, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "would not be the card's" in refused.stderr, refused.stderr[-2000:]
    assert json.loads((dest / "fast.json").read_text()) == wrong


def test_the_default_checkpoint_folder_follows_xdg_and_ignores_an_empty_or_relative_one(tmp_path, monkeypatch):
    config = TrainConfig(data="faces.csv", out=str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.resolved_checkpoint_dir().parent == tmp_path / "xdg" / "fer-batch" / "checkpoints"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unusable in ("", "relative/dir"):  # not a folder under wherever the command was run
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        folder = config.resolved_checkpoint_dir()
        assert folder.parent == tmp_path / "home" / ".cache" / "fer-batch" / "checkpoints"
        assert folder.name.startswith("run-")


def test_a_model_of_ones_own_ships_under_its_own_name_and_only_outside_the_package(tmp_path):
    """ship_ensemble.py and ship_model.py took fast or accurate only, so a user's model shipped over the package's
    own unless --dest moved it, and under their name."""
    import subprocess

    from fer_batch.classify import Classifier

    x, y = make_faces(6, seed=3)
    csv_path = write_csv(tmp_path / "fer.csv", x, y, ["PublicTest"] * len(y))
    _run_folder(tmp_path / "run0", 0)
    dest = tmp_path / "mine"
    script = ROOT / "training" / "ship_ensemble.py"
    done = subprocess.run([sys.executable, str(script), "smiles", str(tmp_path / "run0"),
                           "--views", "flip", "--data", str(csv_path), "--status", "interim", "--command", "mine",
                           "--dest", str(dest)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((dest / "smiles.json").read_text())["name"] == "smiles"
    assert Classifier(str(dest / "smiles.keras"), runtime="keras").predict(x[..., None]).shape == (len(y), 7)
    for script, args in (("ship_ensemble.py", [str(tmp_path / "run0"), "--views", "flip", "--data", str(csv_path)]),
                         ("ship_model.py", [str(tmp_path / "run0")])):
        argv = ([str(tmp_path / "run0"), "smiles"] if script == "ship_model.py" else ["smiles", *args])
        done = subprocess.run([sys.executable, str(ROOT / "training" / script), *argv, "--status", "interim",
                               "--command", "mine"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 2 and "NAME 'smiles': the package ships fast and accurate; give --dest" in \
            done.stderr, (script, done.stderr[-2000:])


@pytest.mark.parametrize("name, dest, said", [
    ("smiles", "fer_batch/models/sub", "the package ships fast and accurate"),  # anywhere inside the package's
    ("smiles.keras", "elsewhere", "give the name without .keras"),
    ("CON", "elsewhere", "expected a plain file name"),
    ("a:b", "elsewhere", "expected a plain file name"),
    ("mine.", "elsewhere", "expected a plain file name"),
])
def test_a_ship_name_is_a_plain_file_name_and_the_package_holds_only_its_own(tmp_path, capsys, name, dest, said):
    import argparse

    sys.path.insert(0, str(ROOT / "training"))
    try:
        from ship_model import check_name
    finally:
        sys.path.pop(0)
    where = ROOT / dest if dest.startswith("fer_batch") else tmp_path / dest
    with pytest.raises(SystemExit):
        check_name(argparse.ArgumentParser(prog="ship"), name, where)
    err = capsys.readouterr().err
    assert f"NAME {name!r}: " in err and said in err, err
    check_name(argparse.ArgumentParser(prog="ship"), "my model-2.b", tmp_path)  # letters, digits, . _ - spaces
