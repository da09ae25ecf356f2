"""``fer-batch train``: fit an architecture on a FER-2013 CSV or image folder, resumably, and write its report.

A run writes into ``out``: ``model.keras`` (the network alone, with its TTA wrapper when asked), ``metrics.json``,
``confusion_<split>.png``, ``history.csv``, ``curves.png`` and ``config.json``. Per-epoch checkpoints go to
``checkpoint_dir`` (outside the repository by default) so that ``resume=True`` continues an interrupted run from
the start of the epoch it was in, with the same optimizer state and learning-rate schedule.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..labels import NUM_CLASSES

OPTIMIZERS = ("sgd", "adam", "adamw")
AUGMENTS = ("none", "standard", "strong")
TTAS = ("none", "flip")


@dataclass(frozen=True)
class TrainConfig:
    """Every choice of a training run; written to ``config.json`` beside the model."""

    data: str
    out: str
    arch: str = "vgg-m"
    epochs: int = 60
    batch_size: int = 64
    seed: int = 0
    resume: bool = False
    optimizer: str = "sgd"
    learning_rate: float | None = None  # None: 0.02 for SGD, 1e-3 for Adam/AdamW
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    augment: str = "standard"
    mixup: float = 0.0
    teacher: str | None = None
    temperature: float = 4.0
    distill_weight: float = 0.7
    tta: str = "flip"
    checkpoint_dir: str | None = None
    #: The seed paper's recipe: Adam at its defaults, no augmentation, no smoothing, no schedule.
    paper_recipe: bool = False

    def __post_init__(self):
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        for name, value, allowed in (
            ("--optimizer", self.optimizer, OPTIMIZERS),
            ("--augment", self.augment, AUGMENTS),
            ("--tta", self.tta, TTAS),
        ):
            if value not in allowed:
                raise UsageError(f"{name} {value!r} is not allowed; choose one of {', '.join(allowed)}")
        if not 0 <= self.label_smoothing < 1:
            raise UsageError(f"--label-smoothing must lie in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.distill_weight <= 1:
            raise UsageError(f"--distill-weight must lie in [0, 1], got {self.distill_weight}")
        if self.temperature <= 0:
            raise UsageError(f"--temperature must be positive, got {self.temperature}")

    @classmethod
    def paper(cls, data: str, out: str, **overrides) -> "TrainConfig":
        """The seed paper's network and recipe (20 epochs, Adam, no augmentation)."""
        base = dict(arch="seed", epochs=20, optimizer="adam", learning_rate=1e-3, weight_decay=0.0,
                    warmup_epochs=0.0, label_smoothing=0.0, augment="none", tta="none", paper_recipe=True)
        base.update(overrides)
        return cls(data=data, out=out, **base)

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 0.02 if self.optimizer == "sgd" else 1e-3

    def resolved_checkpoint_dir(self) -> Path:
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir)
        key = hashlib.sha1(str(Path(self.out).resolve()).encode()).hexdigest()[:12]
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return base / "fer-batch" / "checkpoints" / f"{Path(self.out).name}-{key}"


def machine_info() -> dict:
    """CPU model and vector extensions: speed and wall-time figures mean nothing without them."""
    info = {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["vector_extensions"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return info


class _Batches:
    """Shuffled, augmented batches from uint8 arrays (a ``keras.utils.PyDataset``, built lazily).

    The shuffle order depends only on (seed, epoch), so a resumed run sees the same batches it would have seen.
    Augmentation runs here rather than inside the trained model so a distillation teacher sees the very same
    augmented faces as its student.
    """

    def __new__(cls, *args, **kwargs):
        import keras

        class Batches(keras.utils.PyDataset):
            def __init__(self, x, y, batch_size, augmenter, seed, mixup, smoothing_classes=NUM_CLASSES):
                super().__init__(workers=1, use_multiprocessing=False)
                self.x, self.y = x, y
                self.batch_size = batch_size
                self.augmenter = augmenter
                self.seed = seed
                self.mixup = mixup
                self.epoch = 0
                self._order = None
                self.n_classes = smoothing_classes

            def set_epoch(self, epoch: int):
                self.epoch = epoch
                self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.y))

            @property
            def num_batches(self):
                return math.ceil(len(self.y) / self.batch_size)

            def __getitem__(self, index):
                if self._order is None:
                    self.set_epoch(self.epoch)
                idx = self._order[index * self.batch_size:(index + 1) * self.batch_size]
                x = self.x[idx].astype("float32")
                if self.augmenter is not None:
                    x = keras.ops.convert_to_numpy(self.augmenter(x, training=True))
                y = np.eye(self.n_classes, dtype="float32")[self.y[idx]]
                if self.mixup > 0:
                    rng = np.random.default_rng([self.seed, self.epoch, index])
                    lam = rng.beta(self.mixup, self.mixup, size=(len(idx), 1)).astype("float32")
                    lam = np.maximum(lam, 1 - lam)
                    perm = rng.permutation(len(idx))
                    x = lam[:, :, None, None] * x + (1 - lam[:, :, None, None]) * x[perm]
                    y = lam * y + (1 - lam) * y[perm]
                return x, y

        return Batches(*args, **kwargs)


def _distiller(student, teacher, temperature: float, weight: float, label_smoothing: float):
    import keras
    from keras import ops

    class Distiller(keras.Model):
        """Student trained on a blend of the labels and a frozen teacher's softened probabilities."""

        def __init__(self):
            super().__init__(name="distiller")
            self.student = student
            self.teacher = teacher
            self.teacher.trainable = False
            self.hard = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)

        def call(self, x, training=False):
            return self.student(x, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            t = ops.stop_gradient(self.teacher(x, training=False))
            soft_t = ops.softmax(ops.log(ops.clip(t, 1e-7, 1.0)) / temperature)
            log_s = ops.log_softmax(ops.log(ops.clip(y_pred, 1e-7, 1.0)) / temperature)
            kd = -ops.mean(ops.sum(soft_t * log_s, axis=-1)) * temperature**2
            hard = self.hard(y, y_pred)
            return weight * kd + (1 - weight) * hard

    return Distiller()


def with_tta(net, tta: str):
    """Wrap a network so that it averages its predictions over the test-time views named by ``tta``."""
    import keras
    from keras import layers

    from ..layers import FlipLeftRight

    if tta == "none":
        return net
    if tta != "flip":
        raise UsageError(f"--tta {tta!r} is not allowed; choose one of {', '.join(TTAS)}")
    inputs = keras.Input(shape=net.input_shape[1:], name="face")
    outputs = layers.Average(name="tta_mean")([net(inputs), net(FlipLeftRight(name="hflip")(inputs))])
    return keras.Model(inputs, outputs, name=f"{net.name}_flip_tta")


def train(config: TrainConfig, *, verbose: int | str = "auto") -> dict:
    """Run one training and return its metrics (also written to ``out/metrics.json``)."""
    import keras

    from .architectures import build_augmenter, build_model
    from .datasets import load_dataset
    from .evaluate import evaluate_model, write_report

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = config.resolved_checkpoint_dir()
    if not config.resume and ckpt.exists():
        import shutil

        shutil.rmtree(ckpt)
    ckpt.mkdir(parents=True, exist_ok=True)

    dataset = load_dataset(config.data, seed=config.seed)
    for problem in dataset.problems[:20]:
        print(f"skipped: {problem}", file=sys.stderr)
    if len(dataset.problems) > 20:
        print(f"skipped: ... and {len(dataset.problems) - 20} more malformed rows", file=sys.stderr)
    train_split = dataset["train"]
    val_split = dataset.get("val")

    keras.utils.set_random_seed(config.seed)
    net = build_model(config.arch)
    augmenter = None if config.augment == "none" else build_augmenter(config.augment, seed=config.seed)
    batches = _Batches(train_split.x, train_split.y, config.batch_size, augmenter, config.seed, config.mixup)
    steps_per_epoch = batches.num_batches
    total_steps = steps_per_epoch * config.epochs

    if config.paper_recipe:
        schedule = config.lr
    else:
        warmup = int(config.warmup_epochs * steps_per_epoch)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.lr * (0.1 if warmup else 1.0),
            decay_steps=max(total_steps - warmup, 1),
            warmup_target=config.lr if warmup else None,
            warmup_steps=warmup,
            alpha=0.0,
        )
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                         weight_decay=config.weight_decay or None)
    elif config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    elif config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(schedule)
    else:  # unreachable: TrainConfig validated it
        raise UsageError(f"--optimizer {config.optimizer!r} is not allowed")

    if config.teacher:
        from ..classify import load_keras_model

        teacher = load_keras_model(config.teacher)
        trainer = _distiller(net, teacher, config.temperature, config.distill_weight, config.label_smoothing)
        trainer.compile(optimizer=optimizer, metrics=["accuracy"])
    else:
        trainer = net
        trainer.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=["accuracy"],
        )

    val_data = None
    if val_split is not None and len(val_split):
        val_data = (val_split.x.astype("float32"), np.eye(NUM_CLASSES, dtype="float32")[val_split.y])

    class EpochSeed(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            batches.set_epoch(epoch)

    history_path = out / "history.csv"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(ckpt / "backup"), delete_checkpoint=False),
        EpochSeed(),
        keras.callbacks.CSVLogger(str(history_path), append=config.resume and history_path.exists()),
    ]
    (out / "config.json").write_text(json.dumps(
        {"config": dataclasses.asdict(config), "checkpoint_dir": str(ckpt), "machine": machine_info(),
         "split_method": dataset.split_method,
         "splits": {k: {"n": len(v), "per_class": v.counts()} for k, v in dataset.splits.items()},
         "keras": keras.__version__, "backend": keras.backend.backend()}, indent=2))

    started = time.perf_counter()
    trainer.fit(batches, epochs=config.epochs, validation_data=val_data, batch_size=256,
                callbacks=callbacks, verbose=verbose)
    wall = time.perf_counter() - started

    final = with_tta(net, config.tta)
    model_path = out / "model.keras"
    final.save(model_path)
    history = _read_history(history_path)
    reports = {}
    for split_name in ("val", "test"):
        split = dataset.get(split_name)
        if split is not None and len(split):
            reports[split_name] = evaluate_model(final, split)
            if config.tta != "none":
                reports[f"{split_name}_no_tta"] = evaluate_model(net, split)
    metrics = write_report(out, reports, history=history, extra={
        "arch": config.arch, "params": int(net.count_params()), "epochs": config.epochs,
        "wall_time_s_this_invocation": round(wall, 1), "model": str(model_path), "tta": config.tta,
    })
    return metrics


def _read_history(path: Path) -> dict[str, list[float]]:
    import csv

    if not path.exists():
        return {}
    history: dict[str, list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k != "epoch" and v not in (None, ""):
                    history.setdefault(k, []).append(float(v))
    return history
