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
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError, UsageError
from ..labels import NUM_CLASSES
from .views import VIEWS as TTAS

OPTIMIZERS = ("sgd", "adam", "adamw")
AUGMENTS = ("none", "standard", "strong", "crop-erase")
AUGMENT_ENGINES = ("keras", "opencv")
TEACHER_MODES = ("online", "cached")


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
    #: keras: Keras preprocessing layers; opencv: the same transforms with cv2 (far faster under the torch backend).
    augment_engine: str = "keras"
    mixup: float = 0.0
    #: Start from this model's weights (a packaged name or a .keras path of the same architecture) instead of a
    #: random initialisation: fine-tuning on one's own data, or a second learning-rate cycle on the same data.
    init: str | None = None
    teacher: str | None = None
    #: online: the teacher sees each augmented batch; cached: its probabilities for the un-augmented training faces
    #: are computed once (with its TTA, so they are mirror-invariant) and reused, which makes distilling into a small
    #: network several times cheaper where the teacher dominates the cost (a CPU).
    teacher_mode: str = "online"
    temperature: float = 4.0
    distill_weight: float = 0.7
    tta: str = "flip"
    checkpoint_dir: str | None = None
    #: Stop fitting after about this many minutes: after the first epoch the run works out how many epochs fit and
    #: fits the cosine schedule to them (``epochs`` stays the upper bound). For fixed-length machines (a lent GPU).
    time_budget_min: float | None = None
    #: Threads that prepare (augment) batches ahead of the training step; 1 prepares them in the step's thread.
    data_workers: int = 1
    #: The seed paper's recipe: Adam at its defaults, no augmentation, no smoothing, no schedule.
    paper_recipe: bool = False
    #: Image folders only: "as-is" resizes each image whole; "detect" cuts the face as `analyze` does.
    faces: str = "as-is"

    def __post_init__(self):
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        for name, value, allowed in (
            ("--optimizer", self.optimizer, OPTIMIZERS),
            ("--augment", self.augment, AUGMENTS),
            ("--augment-engine", self.augment_engine, AUGMENT_ENGINES),
            ("--tta", self.tta, TTAS),
            ("--teacher-mode", self.teacher_mode, TEACHER_MODES),
        ):
            if value not in allowed:
                raise UsageError(f"{name} {value!r} is not allowed; choose one of {', '.join(allowed)}")
        if self.augment == "crop-erase" and self.augment_engine != "opencv":
            raise UsageError("--augment crop-erase is made by the OpenCV engine only; add --augment-engine opencv")
        if not 0 <= self.label_smoothing < 1:
            raise UsageError(f"--label-smoothing must lie in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.distill_weight <= 1:
            raise UsageError(f"--distill-weight must lie in [0, 1], got {self.distill_weight}")
        if self.temperature <= 0:
            raise UsageError(f"--temperature must be positive, got {self.temperature}")
        if self.data_workers < 1:
            raise UsageError(f"--data-workers must be at least 1, got {self.data_workers}")
        from ..config import check_faces

        check_faces(self.faces)
        if self.teacher_mode == "cached" and not self.teacher:
            raise UsageError("--teacher-mode cached needs --teacher")
        if self.teacher_mode == "cached" and self.mixup > 0:
            raise UsageError("--mixup cannot be combined with --teacher-mode cached: the cached probabilities are "
                             "the teacher's for each face alone, not for a blend of two; use --teacher-mode online")
        if self.time_budget_min is not None:
            if self.time_budget_min <= 0:
                raise UsageError(f"--time-budget must be positive minutes, got {self.time_budget_min}")
            if self.paper_recipe:
                raise UsageError("--time-budget needs a learning-rate schedule; the paper recipe has none")
            if self.resume:
                raise UsageError("--time-budget cannot be combined with --resume: resume with --epochs set to the "
                                 "epochs the budget settled on (epochs_settled_by_time_budget in config.json)")

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

    def check_outputs(self) -> None:
        """:class:`UsageError` unless ``out`` and the checkpoint folder can be written (cheap: no data is read)."""
        from ..config import check_output_dir

        check_output_dir("--out", self.out)
        hint = "" if self.checkpoint_dir else (
            " (the default checkpoint folder, under $XDG_CACHE_HOME or ~/.cache; choose another with --checkpoint-dir)")
        check_output_dir("--checkpoint-dir", self.resolved_checkpoint_dir(), hint)

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

    The shuffle order depends only on (seed, epoch), and a batch's augmentation and mixup only on (seed, epoch,
    batch), so a resumed run sees the very batches it would have seen (``fit`` must not reshuffle them: it is called
    with ``shuffle=False``). Augmentation runs here rather than inside the trained model so a distillation teacher
    sees the very same augmented faces as its student.
    """

    def __new__(cls, *args, **kwargs):
        import keras

        from .fast_augment import OpenCVAugmenter

        class Batches(keras.utils.PyDataset):
            def __init__(self, x, y, batch_size, augmenter, seed, mixup, smoothing_classes=NUM_CLASSES, workers=1,
                         soft=None):
                super().__init__(workers=workers, use_multiprocessing=False)
                self.x, self.y = x, y
                self.batch_size = batch_size
                self.augmenter = augmenter
                self.seed = seed
                self.mixup = mixup
                self.epoch = 0
                self._order = None
                self.n_classes = smoothing_classes
                self.soft = soft  # (N, 7) cached teacher probabilities, appended to the labels
                # Reseeding and calling the shared augmenter must not interleave between worker threads.
                self._augment_lock = threading.Lock()

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
                if isinstance(self.augmenter, OpenCVAugmenter):
                    x = self.augmenter(x, np.random.default_rng([self.seed, self.epoch, index, 1]))
                elif self.augmenter is not None:
                    with self._augment_lock:
                        _reseed(self.augmenter, (self.seed, self.epoch, index))
                        x = keras.ops.convert_to_numpy(self.augmenter(x, training=True))
                y = np.eye(self.n_classes, dtype="float32")[self.y[idx]]
                if self.soft is not None:
                    y = np.concatenate([y, self.soft[idx]], axis=1)
                if self.mixup > 0:
                    rng = np.random.default_rng([self.seed, self.epoch, index])
                    lam = rng.beta(self.mixup, self.mixup, size=(len(idx), 1)).astype("float32")
                    lam = np.maximum(lam, 1 - lam)
                    perm = rng.permutation(len(idx))
                    x = lam[:, :, None, None] * x + (1 - lam[:, :, None, None]) * x[perm]
                    y = lam * y + (1 - lam) * y[perm]
                return x, y

        return Batches(*args, **kwargs)


def _reseed(augmenter, key: tuple[int, ...]) -> None:
    """Set every random layer's seed state from ``key`` (and the layer's position, so layers draw independently).

    Keras's random layers advance a SeedGenerator on each call, a state no checkpoint holds; reseeding per batch
    makes augmentation a pure function of (seed, epoch, batch) instead.
    """
    import keras

    for j, layer in enumerate(augmenter.layers):
        generators = [v for v in vars(layer).values() if isinstance(v, keras.random.SeedGenerator)]
        generators += list(getattr(layer, "_backend_generators", {}).values())
        for k, generator in enumerate(generators):
            value = int(np.random.default_rng([*key, j, k]).integers(0, 2**31 - 1))
            generator.state.assign(keras.ops.convert_to_tensor([value, 0], dtype=generator.state.dtype))


def _kd_loss(teacher_probs, student_probs, temperature: float):
    """KL(teacher || student) between the probabilities softened at ``temperature``, times T^2 (Hinton et al.).

    KL rather than cross-entropy: the same gradient without the teacher's entropy, so the loss reads 0 when the
    student matches its teacher.
    """
    from keras import ops

    log_t = ops.log_softmax(ops.log(ops.clip(teacher_probs, 1e-7, 1.0)) / temperature)
    log_s = ops.log_softmax(ops.log(ops.clip(student_probs, 1e-7, 1.0)) / temperature)
    return ops.mean(ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1)) * temperature**2


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
            return weight * _kd_loss(t, y_pred, temperature) + (1 - weight) * self.hard(y, y_pred)

    return Distiller()


def _warmup_cosine(peak: float, warmup_steps: int, total_steps: int):
    """Keras's ``CosineDecay`` with warm-up (from peak/10, linearly), except that the total length is a variable.

    A time budget settles the number of epochs only after the first one; a variable keeps that change visible inside
    a compiled train step, where a Python attribute would have been frozen at tracing.
    """
    import keras
    from keras import ops

    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self):
            self.total_steps = keras.Variable(float(total_steps), dtype="float32", trainable=False,
                                              name="schedule_total_steps")

        def __call__(self, step):
            step = ops.cast(step, "float32")
            warm = peak * (0.1 + 0.9 * step / max(warmup_steps, 1))
            progress = ops.clip((step - warmup_steps) / ops.maximum(self.total_steps - warmup_steps, 1.0), 0.0, 1.0)
            cosine = 0.5 * peak * (1.0 + ops.cos(math.pi * progress))
            return ops.where(step < warmup_steps, warm, cosine)

        def get_config(self):
            return {"peak": peak, "warmup_steps": warmup_steps, "total_steps": total_steps}

    return WarmupCosine()


def _time_budget(budget_s: float, steps_per_epoch: int, max_epochs: int, schedule, warmup_steps: int = 0,
                 record=None):
    """A callback that, after the first epoch, fixes the run's length to the epochs that fit in ``budget_s``.

    The budget bounds ``fit`` (training, validation, checkpoints: run it after the checkpoint callbacks), not the
    loading, saving and evaluation around it. The first few steps (start-up, kernel selection) are left out of the
    per-epoch estimate. ``record(epochs)`` is called with the settled length, so that a resume can insist on it.
    """
    import keras

    mark_at = min(10, max(steps_per_epoch // 4, 0))

    class TimeBudget(keras.callbacks.Callback):
        epochs = max_epochs

        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()
            self.mark = None

        def on_train_batch_end(self, batch, logs=None):
            if self.mark is None and batch >= mark_at:
                self.mark, self.mark_batch = time.perf_counter(), batch

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            if epoch == 0:
                measured = max(steps_per_epoch - 1 - self.mark_batch, 1)
                per_epoch = (now - self.mark) * steps_per_epoch / measured
                left = budget_s - (now - self.started)
                self.epochs = int(min(max_epochs, max(1, 1 + left // per_epoch)))
                schedule.total_steps.assign(float(self.epochs * steps_per_epoch))
                print(f"time budget {budget_s / 60:.3g} min: about {per_epoch:.1f} s an epoch, so {self.epochs} "
                      f"epochs (of at most {max_epochs}); the cosine schedule now ends there", file=sys.stderr)
                if self.epochs * steps_per_epoch <= warmup_steps:
                    print("warning: the budget ends within the learning-rate warm-up, so the rate never decays; "
                          "give it more time", file=sys.stderr)
                if record is not None:
                    record(self.epochs)
            if epoch + 1 >= self.epochs:
                self.model.stop_training = True

    return TimeBudget()


def _cached_distillation(temperature: float, weight: float, label_smoothing: float):
    """Loss and accuracy for targets that carry [one-hot labels | cached teacher probabilities] side by side.

    The same blend as the online distiller: ``weight`` x KL(teacher || student) at ``temperature`` (times T^2) plus
    the rest x the labels' smoothed cross-entropy.
    """
    import keras

    hard = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)

    def distillation_loss(y_true, y_pred):
        labels, teacher = y_true[:, :NUM_CLASSES], y_true[:, NUM_CLASSES:]
        return weight * _kd_loss(teacher, y_pred, temperature) + (1 - weight) * hard(labels, y_pred)

    def label_accuracy(y_true, y_pred):
        return keras.metrics.categorical_accuracy(y_true[:, :NUM_CLASSES], y_pred)

    return distillation_loss, keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")


def _cached_teacher(path, splits: dict[str, np.ndarray], cache: Path, reuse: bool) -> dict[str, np.ndarray]:
    """The teacher's probabilities for each split's faces, kept in ``cache`` so that a resumed run trains on the very
    targets it started with (a CPU's TFLite and a GPU's Keras differ in the last bits)."""
    if reuse and cache.is_file():
        with np.load(cache) as saved:
            if all(k in saved and len(saved[k]) == len(x) for k, x in splits.items()):
                return {k: saved[k] for k in splits}
    probs = {k: _teacher_probabilities(path, x, k) for k, x in splits.items()}
    np.savez(cache, **probs)
    return probs


def _teacher_probabilities(path, x: np.ndarray, split: str = "train") -> np.ndarray:
    """The teacher's probabilities for uint8 faces: through the product's classifier (TFLite on a CPU) where
    TensorFlow is the backend, else in Keras."""
    import keras

    print(f"caching the teacher's probabilities for {len(x)} {split} faces ...", file=sys.stderr)
    if keras.backend.backend() == "tensorflow":
        from ..classify import Classifier

        return Classifier(path).predict(x)
    from ..classify import load_keras_model
    from .evaluate import predict_probs

    return predict_probs(load_keras_model(path), x)


def _load_initial_weights(net, path, given: str) -> None:
    """Copy a saved model's weights into ``net``; a TTA-wrapped file gives those of the network inside it."""
    from ..classify import load_keras_model

    source = tta_inner(load_keras_model(path))
    ours = [tuple(w.shape) for w in net.weights]
    theirs = [tuple(w.shape) for w in source.weights]
    if ours != theirs:
        raise UsageError(
            f"--init {given!r}: its network ({source.name}, {len(theirs)} weight tensors) does not match --arch "
            f"{net.name} ({len(ours)}); pass the --arch it was trained with"
        )
    net.set_weights(source.get_weights())


def inference_copy(net):
    """A fresh, uncompiled copy of ``net`` with its weights. Saved as it is, a trained model also carries its
    optimizer's slots (as large again as the weights for SGD with momentum); ``keras.models.clone_model`` keeps
    them too, so the copy is rebuilt from the architecture's config."""
    copy = net.__class__.from_config(net.get_config())
    copy.set_weights(net.get_weights())
    return copy


def tta_inner(model):
    """The network inside a :func:`with_tta` wrapper (its one nested model), or ``model`` itself when unwrapped."""
    import keras

    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner[0] if len(inner) == 1 else model


def with_tta(net, tta: str):
    """Wrap a network so that it averages its predictions over the test-time views named by ``tta``
    (:mod:`~fer_batch.training.views`)."""
    from .views import with_views

    return with_views(net, tta)


def train(config: TrainConfig, *, verbose: int | str = "auto", callbacks: list | None = None,
          detector_factory=None) -> dict:
    """Run one training and return its metrics (also written to ``out/metrics.json``).

    ``detector_factory`` makes the face detectors of ``config.faces == "detect"`` (see
    :class:`~fer_batch.training.photo_faces.PhotoFaceCropper`).

    ``callbacks`` are extra Keras callbacks, run after the checkpoint and history ones (tests use one to interrupt a
    run at an epoch boundary, as Ctrl-C would).
    """
    import keras

    from .architectures import ARCHITECTURES, build_augmenter, build_model
    from .datasets import load_dataset, report_problems
    from .evaluate import evaluate_model, write_report

    if config.arch not in ARCHITECTURES:
        build_model(config.arch)  # raises UsageError listing the valid names, before any slow work
    from ..classify import resolve_model

    # A packaged name or a .keras path; ModelError when neither, before any slow work.
    init_path = resolve_model(config.init) if config.init else None
    teacher_path = resolve_model(config.teacher) if config.teacher else None

    # Outputs that cannot be written fail now, not after the data is read or an epoch is trained.
    config.check_outputs()
    out = Path(config.out)
    ckpt = config.resolved_checkpoint_dir()
    backup_dir = ckpt / "backup"
    history_path = out / "history.csv"
    restored_epoch = _backup_epoch(backup_dir)
    if config.resume and restored_epoch is not None:
        _check_resumable(config, out / "config.json")  # before the data: reading FER-2013 takes a while
    # Read the data before touching any output or checkpoint, so a bad --data changes nothing.
    dataset = load_dataset(config.data, seed=config.seed, faces=config.faces, detector_factory=detector_factory)
    report_problems(dataset)
    train_split = dataset.get("train")
    if train_split is None or not len(train_split):
        raise DatasetError(
            f"{config.data}: no training rows (found splits: {', '.join(sorted(dataset.splits)) or 'none'}); "
            "a CSV needs Usage=Training rows or no Usage column, a folder a train/ folder or no split folders"
        )
    val_split = dataset.get("val")

    if not config.resume and backup_dir.exists():
        import shutil

        # Only our own sub-folder: --checkpoint-dir may name a folder that holds other things.
        shutil.rmtree(backup_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    resuming = config.resume and restored_epoch is not None
    if resuming:
        _truncate_history(history_path, restored_epoch)
        print(f"resuming from the end of epoch {restored_epoch} (checkpoint {backup_dir})", file=sys.stderr)
    elif config.resume:
        print(f"no checkpoint in {backup_dir}; starting from epoch 1", file=sys.stderr)

    keras.utils.set_random_seed(config.seed)
    net = build_model(config.arch)
    if init_path is not None:
        _load_initial_weights(net, init_path, config.init)
    if config.augment == "none":
        augmenter = None
    elif config.augment_engine == "opencv":
        from .fast_augment import OpenCVAugmenter

        augmenter = OpenCVAugmenter(config.augment)
    else:
        augmenter = build_augmenter(config.augment, seed=config.seed)
    cached_teacher = bool(config.teacher) and config.teacher_mode == "cached"
    soft = {}
    if cached_teacher:
        faces = {"train": train_split.x, **({"val": val_split.x} if val_split is not None and len(val_split) else {})}
        soft = _cached_teacher(teacher_path, faces, ckpt / "teacher_probs.npz", reuse=resuming)
    batches = _Batches(train_split.x, train_split.y, config.batch_size, augmenter, config.seed, config.mixup,
                       workers=config.data_workers, soft=soft.get("train"))
    steps_per_epoch = batches.num_batches
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)

    if config.paper_recipe:
        schedule = config.lr
    elif config.time_budget_min is not None:
        schedule = _warmup_cosine(config.lr, warmup, total_steps)
    else:
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

    if cached_teacher:
        trainer = net
        loss, accuracy = _cached_distillation(config.temperature, config.distill_weight, config.label_smoothing)
        trainer.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])
    elif config.teacher:
        from ..classify import load_keras_model

        teacher = load_keras_model(teacher_path)
        trainer = _distiller(net, teacher, config.temperature, config.distill_weight, config.label_smoothing)
        trainer.compile(optimizer=optimizer, metrics=["accuracy"])
        # BackupAndRestore needs a built model; a subclassed one is built by calling it once.
        trainer(np.zeros((1, *net.input_shape[1:]), "float32"))
    else:
        trainer = net
        trainer.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=["accuracy"],
        )

    val_data = None
    if val_split is not None and len(val_split):
        val_y = np.eye(NUM_CLASSES, dtype="float32")[val_split.y]
        if cached_teacher:  # the same blend of labels and teacher as in training
            val_y = np.concatenate([val_y, soft["val"]], axis=1)
        val_data = (val_split.x.astype("float32"), val_y)

    class EpochSeed(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            batches.set_epoch(epoch)

    # The history row of an epoch is written before its checkpoint: a crash between the two leaves a row that the
    # resumed run drops (see _truncate_history) and redoes, never a missing row.
    all_callbacks = [
        EpochSeed(),
        keras.callbacks.CSVLogger(str(history_path), append=resuming and history_path.exists()),
        keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False),
        *(callbacks or []),
    ]
    if config.time_budget_min is not None:
        def record(epochs: int) -> None:
            meta = json.loads((out / "config.json").read_text())
            meta["epochs_settled_by_time_budget"] = epochs
            (out / "config.json").write_text(json.dumps(meta, indent=2))

        # Last, so that the epoch it times includes writing the history row and the checkpoint.
        all_callbacks.append(_time_budget(config.time_budget_min * 60, steps_per_epoch, config.epochs, schedule,
                                          warmup_steps=warmup, record=record))
    (out / "config.json").write_text(json.dumps(
        {"config": dataclasses.asdict(config), "checkpoint_dir": str(ckpt), "machine": machine_info(),
         "split_method": dataset.split_method,
         "splits": {k: {"n": len(v), "per_class": v.counts()} for k, v in dataset.splits.items()},
         "keras": keras.__version__, "backend": keras.backend.backend()}, indent=2))

    started = time.perf_counter()
    # shuffle=False: the batches are already shuffled per (seed, epoch); Keras's own shuffle of the batch order
    # would draw from Python's global random state, which a resumed run cannot restore.
    trainer.fit(batches, epochs=config.epochs, validation_data=val_data, batch_size=256, shuffle=False,
                callbacks=all_callbacks, verbose=verbose)
    wall = time.perf_counter() - started

    final = with_tta(inference_copy(net), config.tta)
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
        "arch": config.arch, "params": int(net.count_params()),
        "epochs": len(history.get("loss", [])) or config.epochs,
        "wall_time_s_this_invocation": round(wall, 1), "model": str(model_path), "tta": config.tta,
    })
    return metrics


def _read_history(path: Path) -> dict[str, list[float]]:
    """Per-epoch values from ``history.csv``; CSVLogger's "NA" (no validation split) and blanks are left out."""
    import csv

    if not path.exists():
        return {}
    history: dict[str, list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k == "epoch" or k is None or v in (None, ""):
                    continue
                try:
                    history.setdefault(k, []).append(float(v))
                except ValueError:
                    continue
    return {k: v for k, v in history.items() if v}


def _backup_epoch(backup_dir: Path) -> int | None:
    """Epochs completed according to a BackupAndRestore checkpoint, or None when there is none."""
    meta = backup_dir / "training_metadata.json"
    if not (backup_dir / "latest.weights.h5").exists() or not meta.exists():
        return None
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _truncate_history(path: Path, epochs_done: int) -> None:
    """Keep the rows of the first ``epochs_done`` epochs: a resumed run redoes the epoch it was in."""
    import csv

    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epochs_done]
    if len(kept) != len(rows):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(kept)


#: Choices a checkpoint cannot survive: they change the weights' or the optimizer's structure, or the step count.
# seed fixes the 80/20 split and the batch order, faces how an image folder becomes faces: changing either would
# continue training on other data.
_MUST_MATCH_ON_RESUME = ("arch", "batch_size", "optimizer", "teacher", "teacher_mode", "seed", "faces")
#: What a run whose config.json predates a field did, for that field.
_BEFORE_THE_FIELD_EXISTED = {"faces": "as-is"}


def _check_resumable(config: TrainConfig, config_json: Path) -> None:
    """Refuse a resume whose checkpoint cannot fit the new settings; warn where it fits but the schedule changes."""
    try:
        meta = json.loads(config_json.read_text())
        before = meta["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing to compare with: trust the checkpoint
    now = dataclasses.asdict(config)
    settled = meta.get("epochs_settled_by_time_budget")
    if settled is not None and config.epochs != settled:
        raise UsageError(
            f"--resume: this run settled on {settled} epochs under --time-budget (its learning-rate schedule ends "
            f"there); resume it with --epochs {settled}"
        )
    before = {**_BEFORE_THE_FIELD_EXISTED, **before}
    changed = [k for k in _MUST_MATCH_ON_RESUME if k in before and before[k] != now.get(k)]
    if changed:
        diffs = ", ".join(f"{k} {before[k]!r} -> {now[k]!r}" for k in changed)
        raise UsageError(
            f"--resume: the checkpoint in {config.resolved_checkpoint_dir()} was made with different settings "
            f"({diffs}); resume with the original ones, or start again without --resume (with --overwrite)"
        )
    if "epochs" in before and config.epochs not in (before["epochs"], settled) and not config.paper_recipe:
        print(
            f"warning: --epochs changed from {before['epochs']} to {config.epochs} on resume: the cosine learning-rate "
            f"schedule is recomputed for {config.epochs} epochs and continues from the step reached, so the result "
            "differs from an uninterrupted run of either length",
            file=sys.stderr,
        )
