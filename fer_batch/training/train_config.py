"""Every choice of a training run (:class:`TrainConfig`, validated once, written to ``config.json``) and the machine
it ran on (:func:`machine_info`, recorded beside it: wall times mean nothing without it)."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .views import VIEWS as TTAS

OPTIMIZERS = ("sgd", "adam", "adamw")
AUGMENTS = ("none", "standard", "strong", "crop-erase")
AUGMENT_ENGINES = ("keras", "opencv")
TEACHER_MODES = ("online", "cached", "views")
#: Keras dtype policies a run may train under (mixed_bfloat16: bf16 compute, float32 weights).
PRECISIONS = ("float32", "mixed_bfloat16")


def default_lr(optimizer: str) -> float:
    """The peak learning rate when --lr is not given: 0.02 for SGD, 1e-3 for Adam/AdamW."""
    if optimizer == "sgd":
        return 0.02
    if optimizer in ("adam", "adamw"):
        return 1e-3
    raise UsageError(f"--optimizer {optimizer!r} is not allowed; choose one of {', '.join(OPTIMIZERS)}")


def _check_number(option: str, value: float, *, positive: bool) -> None:
    """A finite number, above 0 (``positive``) or at least 0: NaN and infinity pass a bare ``<= 0`` test and then
    train on NaN losses or settle a time budget on one epoch."""
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        need = "a positive number" if positive else "a number of at least 0"
        raise UsageError(f"{option} must be {need}, got {value}")


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
    #: views: the probabilities for ``teacher_views`` fixed augmented copies of each training face, computed once;
    #: epoch e trains on copy e % teacher_views with its own targets (:mod:`.teacher_views`).
    teacher_mode: str = "online"
    teacher_views: int = 4
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
    #: mixed_bfloat16 computes in bf16 with float32 weights: 2.9x faster for the full-width vgg on a CPU with AMX
    #: (training/README.md), slower where bf16 is emulated. The saved model is float32 either way.
    precision: str = "float32"

    def __post_init__(self):
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0 <= self.seed < 2**32:  # what NumPy's and Keras's generators take
            raise UsageError(f"--seed must lie in [0, 2**32), got {self.seed}")
        for name, value, allowed in (
            ("--optimizer", self.optimizer, OPTIMIZERS),
            ("--augment", self.augment, AUGMENTS),
            ("--augment-engine", self.augment_engine, AUGMENT_ENGINES),
            ("--tta", self.tta, TTAS),
            ("--teacher-mode", self.teacher_mode, TEACHER_MODES),
            ("--precision", self.precision, PRECISIONS),
        ):
            if value not in allowed:
                raise UsageError(f"{name} {value!r} is not allowed; choose one of {', '.join(allowed)}")
        if self.augment == "crop-erase" and self.augment_engine != "opencv":
            raise UsageError("--augment crop-erase is made by the OpenCV engine only; add --augment-engine opencv")
        if not 0 <= self.label_smoothing < 1:
            raise UsageError(f"--label-smoothing must lie in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.distill_weight <= 1:
            raise UsageError(f"--distill-weight must lie in [0, 1], got {self.distill_weight}")
        _check_number("--temperature", self.temperature, positive=True)
        if self.learning_rate is not None:
            _check_number("--lr", self.learning_rate, positive=True)
        _check_number("--weight-decay", self.weight_decay, positive=False)
        _check_number("warmup_epochs", self.warmup_epochs, positive=False)
        _check_number("--mixup", self.mixup, positive=False)
        if self.data_workers < 1:
            raise UsageError(f"--data-workers must be at least 1, got {self.data_workers}")
        from ..config import check_faces

        check_faces(self.faces)
        if self.teacher_mode in ("cached", "views") and not self.teacher:
            raise UsageError(f"--teacher-mode {self.teacher_mode} needs --teacher")
        if self.teacher_mode in ("cached", "views") and self.mixup > 0:
            raise UsageError(f"--mixup cannot be combined with --teacher-mode {self.teacher_mode}: the cached "
                             "probabilities are the teacher's for each face alone, not for a blend of two; use "
                             "--teacher-mode online")
        if self.teacher_views < 1:
            raise UsageError(f"--teacher-views must be at least 1, got {self.teacher_views}")
        if self.teacher_mode == "views" and self.augment_engine != "opencv":
            raise UsageError("--teacher-mode views makes its augmented copies with the OpenCV engine only; add "
                             "--augment-engine opencv")
        if self.teacher_mode == "views" and self.augment == "none":
            raise UsageError("--teacher-mode views caches the teacher's answers for augmented copies of each face; "
                             "with --augment none there are none (use --teacher-mode cached)")
        if self.time_budget_min is not None:
            _check_number("--time-budget", self.time_budget_min, positive=True)
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
        return self.learning_rate if self.learning_rate is not None else default_lr(self.optimizer)

    def check_outputs(self) -> None:
        """:class:`UsageError` unless ``out`` and the checkpoint folder can be written (cheap: no data is read)."""
        from ..config import check_output_dir, check_outside_data

        check_output_dir("--out", self.out)
        hint = "" if self.checkpoint_dir else (
            " (the default checkpoint folder, under $XDG_CACHE_HOME or ~/.cache; choose another with --checkpoint-dir)")
        check_output_dir("--checkpoint-dir", self.resolved_checkpoint_dir(), hint)
        check_outside_data("--out", self.out, self.data)
        check_outside_data("--checkpoint-dir", self.resolved_checkpoint_dir(), self.data)

    def resolved_checkpoint_dir(self) -> Path:
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir)
        key = hashlib.sha1(str(Path(self.out).resolve()).encode()).hexdigest()[:12]
        from ..user_cache import user_cache_dir

        return user_cache_dir() / "checkpoints" / f"{Path(self.out).name}-{key}"


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
