"""``fer-batch train``: fit an architecture on a FER-2013 CSV or image folder, resumably, and write its report.

A run writes into ``out``: ``model.keras`` (the network alone, with its TTA wrapper when asked), ``metrics.json``,
``confusion_<split>.png``, ``history.csv``, ``curves.png`` and ``config.json``. Per-epoch checkpoints go to
``checkpoint_dir`` (outside the repository by default) so that ``resume=True`` continues an interrupted run from
the start of the epoch it was in, with the same optimizer state and learning-rate schedule.

:func:`train` is the recipe; each step lives in the module named for it (the package's docstring, in
``__init__.py``, maps them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import DatasetError, UsageError
from ..labels import NUM_CLASSES
from ..wording import count
from .saved_models import inference_copy, tta_inner, with_tta
from .train_config import TrainConfig, machine_info

# Importable from here as before this module was split (the CLI, training/ scripts and benchmarks use them).
__all__ = ["TrainConfig", "inference_copy", "machine_info", "train", "tta_inner", "with_tta"]


def train(config: TrainConfig, *, verbose: int | str = "auto", callbacks: list | None = None,
          detector_factory=None) -> dict:
    """Run one training and return its metrics (also written to ``out/metrics.json``).

    ``detector_factory`` makes the face detectors of ``config.faces == "detect"`` (see
    :class:`~fer_batch.training.photo_faces.PhotoFaceCropper`).

    ``callbacks`` are extra Keras callbacks, run after the checkpoint and history ones (tests use one to interrupt a
    run at an epoch boundary, as Ctrl-C would).
    """
    # Every setting that can be refused is refused before the data is read or anything is written.
    init_weights, teacher_path = _check_before_work(config)
    from .checkpoints import locked

    with locked(config):
        return _train(config, init_weights, teacher_path, verbose, callbacks, detector_factory)


def _train(config: TrainConfig, init_weights, teacher_path, verbose, callbacks, detector_factory) -> dict:
    from .checkpoints import (backup_epoch, check_resumable, check_same_data, refuse_a_resume_that_would_start_over,
                              start_or_resume)

    # Only a resume reads (and repairs) the checkpoint: a fresh run deletes it, damaged or not.
    restored_epoch = backup_epoch(config.resolved_checkpoint_dir() / "backup") if config.resume else None
    if config.resume and restored_epoch is not None:
        if config.epochs < restored_epoch:  # Keras would train no epoch and save the longer run as this one
            raise UsageError(f"--epochs {config.epochs}: the checkpoint in {config.resolved_checkpoint_dir()} has "
                             f"already completed {count(restored_epoch, 'epoch')}; resume with --epochs "
                             f"{restored_epoch} or more")
        check_resumable(config, Path(config.out) / "config.json")  # before the data: reading FER-2013 takes a while
    elif config.resume:
        refuse_a_resume_that_would_start_over(config)
    # Read the data before touching any output or checkpoint, so a bad --data changes nothing.
    dataset, train_split, val_split = _read_data(config, detector_factory)
    if config.resume and restored_epoch is not None:
        check_same_data(config, dataset)
    resuming = start_or_resume(config, restored_epoch)
    with _dtype_policy(config.precision):
        net, wall = _fit(config, init_weights, teacher_path, dataset, train_split, val_split, resuming, verbose,
                         callbacks)
    # Outside the policy: the saved copy and its TTA wrapper are built as float32 whatever the run trained in.
    return _save_and_report(config, net, dataset, wall)


@contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    """Build and train under Keras's global dtype policy ``name``, and give the caller's back afterwards."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _fit(config: TrainConfig, init_weights, teacher_path, dataset, train_split, val_split, resuming: bool, verbose,
         callbacks):
    """Build and fit the network under the run's dtype policy: (the trained network, the fit's wall seconds)."""
    import keras

    from .architectures import build_model
    from .batches import Batches, epoch_seed, make_augmenter
    from .checkpoints import checkpoint_callbacks, record_settled_epochs, write_run_record
    from .distillation import cached_teacher, compile_trainer
    from .schedules import make_optimizer, make_schedule, time_budget

    keras.utils.set_random_seed(config.seed)
    net = build_model(config.arch)
    if init_weights is not None:
        net.set_weights(init_weights)
    augmenter = make_augmenter(config.augment, config.augment_engine, config.seed)
    soft, views = {}, {}
    if config.teacher and config.teacher_mode in ("cached", "views"):
        faces = {"train": train_split.x, **({"val": val_split.x} if val_split is not None else {})}
        if config.teacher_mode == "views":
            views = _teacher_views(config, teacher_path, train_split.x, augmenter)
            faces.pop("train")  # validation keeps the un-augmented faces' targets
        soft = cached_teacher(teacher_path, faces, config.resolved_checkpoint_dir() / "teacher_probs.npz",
                              reuse=resuming)
    batches = Batches(train_split.x, train_split.y, config.batch_size, augmenter, config.seed, config.mixup,
                      workers=config.data_workers, soft=soft.get("train"), **views)
    schedule, warmup = make_schedule(config, batches.num_batches)
    trainer = compile_trainer(net, config, make_optimizer(config, schedule), teacher_path)
    val_data = _validation_data(val_split, soft.get("val"))

    # The NaN check before the checkpoint's: a diverged epoch must not become the checkpoint a --resume loads.
    all_callbacks = [epoch_seed(batches), _finite_loss(config), *checkpoint_callbacks(config, resuming),
                     *(callbacks or [])]
    if config.time_budget_min is not None:
        # Last, so that the epoch it times includes writing the history row and the checkpoint.
        all_callbacks.append(time_budget(config.time_budget_min * 60, batches.num_batches, config.epochs, schedule,
                                         warmup_steps=warmup, record=lambda n: record_settled_epochs(config, n)))
    write_run_record(config, dataset)

    started = time.perf_counter()
    # shuffle=False: the batches are already shuffled per (seed, epoch); Keras's own shuffle of the batch order
    # would draw from Python's global random state, which a resumed run cannot restore.
    try:
        trainer.fit(batches, epochs=config.epochs, validation_data=val_data, batch_size=256, shuffle=False,
                    callbacks=all_callbacks, verbose=verbose)
    finally:
        batches.close()
    return net, time.perf_counter() - started


def _finite_loss(config: TrainConfig):
    """A callback that ends the run with :class:`TrainingDiverged` at the end of an epoch whose loss is not finite:
    it had trained on, saved NaN weights as its model and reported 13.5% (every face "angry") as a result, exit 0.
    The last good epoch's checkpoint stays as it was."""
    import math

    import keras

    from ..errors import TrainingDiverged

    class FiniteLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise TrainingDiverged(
                    f"the training loss became {float(loss)} in epoch {epoch + 1}: the network diverged and its "
                    f"weights are no longer numbers, so no model was saved; start again (--overwrite) with a lower "
                    f"--lr than {config.lr:g}" + (", or --precision float32" if config.precision != "float32" else ""))

    return FiniteLoss()


def _teacher_views(config: TrainConfig, teacher_path, x, augmenter) -> dict:
    """``views`` and ``view_soft`` for :class:`~.batches.Batches`: fixed augmented copies of the training faces and
    the teacher's probabilities for each, computed once and kept beside the checkpoints."""
    from .distillation import teacher_predictor
    from .teacher_views import cached_view_probs, make_views, views_key

    views = make_views(x, augmenter, config.seed, config.teacher_views)
    key = views_key(teacher_path, config.seed, config.teacher_views, config.augment, x)
    probs = cached_view_probs(lambda: teacher_predictor(teacher_path), views,
                              config.resolved_checkpoint_dir() / "teacher_views.npz", key)
    return {"views": views, "view_soft": probs}


def _check_before_work(config: TrainConfig):
    """The --init weights and the --teacher model path, after refusing an unknown --arch or model, an --init that
    does not fit --arch, and unwritable outputs."""
    from ..classify import check_keras_file, resolve_model
    from .architectures import ARCHITECTURES, build_model
    from .saved_models import initial_weights

    if config.arch not in ARCHITECTURES:
        build_model(config.arch)  # raises UsageError listing the valid names, before any slow work
    # A packaged name or a .keras path; ModelError when neither, before any slow work.
    init_path = resolve_model(config.init, option="--init") if config.init else None
    teacher_path = resolve_model(config.teacher, option="--teacher") if config.teacher else None
    for path, option in ((init_path, "--init"), (teacher_path, "--teacher")):
        if path is not None:
            check_keras_file(path, option)
    # Outputs that cannot be written fail now, not after the data is read or an epoch is trained.
    config.check_outputs()
    return (initial_weights(config.arch, init_path, config.init) if init_path is not None else None), teacher_path


def _read_data(config: TrainConfig, detector_factory):
    """The dataset and its training and validation splits (validation None when absent or empty)."""
    import sys

    from .datasets import describe_splits, load_dataset, report_problems

    dataset = load_dataset(config.data, seed=config.seed, faces=config.faces, detector_factory=detector_factory)
    report_problems(dataset, out=config.out)  # listed whole in out/skipped.txt by write_run_record
    print(describe_splits(dataset), file=sys.stderr)
    train_split = dataset.get("train")
    if train_split is None or not len(train_split):
        raise DatasetError(
            f"{config.data}: no training rows (found splits: {', '.join(sorted(dataset.splits)) or 'none'}); "
            "a CSV needs Usage=Training rows or no Usage column, a folder a train/ folder or no split folders"
        )
    val_split = dataset.get("val")
    if val_split is None or not len(val_split):
        print(f"note: {config.data} gives no validation faces ({_no_val_reason(dataset)}): the run trains without "
              "measuring itself, and its metrics.json has no val split", file=sys.stderr)
        val_split = None
    return dataset, train_split, val_split


def _no_val_reason(dataset) -> str:
    from .datasets import HOLDOUT_TOO_SMALL

    if dataset.split_method.startswith("stratified"):
        return f"{HOLDOUT_TOO_SMALL}; give more faces, or a val/ folder"
    return "no val/ folder, nor Usage=PublicTest rows" if "val" not in dataset.splits else "its val split is empty"


def _validation_data(val_split, soft_val):
    """(faces, targets) for ``fit``'s validation: one-hot labels, beside the cached teacher's when distilling."""
    if val_split is None:
        return None
    val_y = np.eye(NUM_CLASSES, dtype="float32")[val_split.y]
    if soft_val is not None:  # the same blend of labels and teacher as in training
        val_y = np.concatenate([val_y, soft_val], axis=1)
    return val_split.x.astype("float32"), val_y


def _save_and_report(config: TrainConfig, net, dataset, wall: float) -> dict:
    """Save ``model.keras`` (with its TTA), evaluate it on the validation and test splits, write the report."""
    from .checkpoints import read_history
    from .evaluate import split_reports, write_report

    out = Path(config.out)
    final = with_tta(inference_copy(net), config.tta)
    model_path = out / "model.keras"
    final.save(model_path)
    history = read_history(out / "history.csv")
    # `final`, not `net`: without views, the network inside model.keras (float32 also after a bf16 run)
    reports = split_reports(final, dataset, config.tta)
    return write_report(out, reports, history=history, extra={
        "arch": config.arch, "params": int(net.count_params()),
        "epochs": len(history.get("loss", [])) or config.epochs,
        "wall_time_s_this_invocation": round(wall, 1), "model": str(model_path), "tta": config.tta,
    })
