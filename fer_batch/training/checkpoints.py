"""Checkpoints and resume: what a run leaves behind so that ``--resume`` continues it, and the checks that refuse a
resume the checkpoint cannot serve.

A run keeps four things: Keras's ``BackupAndRestore`` checkpoint in ``<checkpoint_dir>/backup`` (weights,
optimizer state and step, written at the end of every epoch), ``history.csv`` in ``out`` (one row an epoch),
``epoch_times.csv`` in ``out`` (each epoch's wall and process CPU seconds: what accuracy cost, on a shared or
niced machine where wall time says little) and ``config.json`` in ``out`` (the settings, which
:func:`check_resumable` compares against a resume's).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError
from ..wording import count
from .train_config import TrainConfig, default_lr, machine_info


def write_atomically(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a resume trusts config.json and history.csv, and a session's end can stop
    a run anywhere."""
    import os

    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def _lock_file(folder: Path) -> Path:
    """The lock of a run or checkpoint folder: in the user cache, named for the folder's resolved path, so that
    ``.``, ``..``, a link and its target are one folder, and no lock file lands beside or inside a folder the user
    named (``--out .`` has no name to put one beside)."""
    import hashlib
    import os

    from ..user_cache import user_cache_dir

    key = hashlib.sha256(os.fsencode(Path(folder).resolve())).hexdigest()[:24]
    return user_cache_dir() / "locks" / f"{key}.lock"


@contextmanager
def locked(config: TrainConfig) -> Iterator[None]:
    """The run folder and the checkpoint folder held for this process alone (one lock where they are one folder):
    a second training into either (a --resume started while the first still runs) wrote its epochs into the same
    history, or resumed from the first's checkpoint into another network."""
    from ..sinks import take_lock

    folders = {}
    for option, folder in (("--out", Path(config.out)), ("--checkpoint-dir", config.resolved_checkpoint_dir())):
        folders.setdefault(folder.resolve(), (option, folder))
    locks = []
    try:
        for resolved, (option, folder) in folders.items():
            locks.append(take_lock(folder, option, _lock_file(resolved)))
        yield
    finally:
        for lock in locks:
            lock.close()


def check_unlocked(config: TrainConfig) -> None:
    """:class:`UsageError` now, before Keras loads, where another training holds either folder (:func:`locked`)."""
    with locked(config):
        pass


def start_or_resume(config: TrainConfig, restored_epoch: int | None) -> bool:
    """Prepare the output and checkpoint folders; True when the run continues from a checkpoint.

    A fresh run deletes an old checkpoint; a resumed one drops the history rows of the epoch it redoes.
    """
    out, ckpt = Path(config.out), config.resolved_checkpoint_dir()
    backup_dir = ckpt / "backup"
    if restored_epoch is None and backup_dir.exists():
        import shutil

        # Only our own sub-folder: --checkpoint-dir may name a folder that holds other things. A resume that found
        # no whole checkpoint there (a run killed while writing its first) starts again too, so Keras must not load
        # the torn or half-written files either.
        shutil.rmtree(backup_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    resuming = config.resume and restored_epoch is not None
    # Said here, once the data has been read and the folders exist: not before an error that writes nothing.
    print(f"checkpoints: {ckpt} (after each epoch; continue an interrupted run with --resume)", file=sys.stderr)
    if resuming:
        truncate_history(out / "history.csv", restored_epoch)
        truncate_history(out / TIMES_FILE, restored_epoch)
        print(f"resuming from the end of epoch {restored_epoch} (checkpoint {backup_dir})", file=sys.stderr)
        return True
    # A run started again: nothing of the earlier one may pass for this one's.
    for old in [*(out / name for name in RUN_FILES), *out.glob("confusion_*.png")]:
        old.unlink(missing_ok=True)
    if config.resume:
        print(f"no checkpoint in {backup_dir}; starting from epoch 1", file=sys.stderr)
    return False


#: What a run writes into ``--out`` (besides ``confusion_<split>.png``); a run that starts again deletes them first.
#: Not ``model.keras``: it may be this run's own ``--init`` or ``--teacher`` (fine-tuning in place), read after this;
#: the run replaces it when it ends.
RUN_FILES = ("metrics.json", "history.csv", "epoch_times.csv", "curves.png", "config.json")


def refuse_a_resume_that_would_start_over(config: TrainConfig) -> None:
    """For a ``--resume`` that finds no checkpoint where it looks: :class:`UsageError` where ``--out`` shows that the
    run's checkpoint is elsewhere (its ``config.json`` names another folder) or that the run finished (``model.keras``
    is there), instead of training from epoch 1 over it. A run killed before its first checkpoint starts again."""
    out, ckpt = Path(config.out), config.resolved_checkpoint_dir()
    try:
        recorded = json.loads((out / "config.json").read_text()).get("checkpoint_dir")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded and Path(recorded).resolve() != ckpt.resolve():
        raise UsageError(f"--resume: no checkpoint in {ckpt / 'backup'}, but {out} was trained with its checkpoints "
                         f"in {recorded}; pass --checkpoint-dir {recorded} (or start again with --overwrite)")
    if (out / "model.keras").exists():
        raise UsageError(f"--resume: {out} holds a finished run ({out / 'model.keras'}) and {ckpt / 'backup'} no "
                         "checkpoint to continue it from; start again with --overwrite, or train into another --out")


def checkpoint_callbacks(config: TrainConfig, resuming: bool) -> list:
    """The history logger and the per-epoch checkpoint, in that order.

    The history row of an epoch is written before its checkpoint: a crash between the two leaves a row that the
    resumed run drops (see :func:`truncate_history`) and redoes, never a missing row.
    """
    import keras

    history_path = Path(config.out) / "history.csv"
    return [
        epoch_clock(Path(config.out) / TIMES_FILE, append=resuming),
        keras.callbacks.CSVLogger(str(history_path), append=resuming and history_path.exists()),
        # double_checkpoint: the previous epoch's files are kept beside the latest, so a kill while the latest are
        # being written (a session's end stops the run wherever it is) costs one epoch, not the run.
        keras.callbacks.BackupAndRestore(str(config.resolved_checkpoint_dir() / "backup"), delete_checkpoint=False,
                                         double_checkpoint=True),
    ]


TIMES_FILE = "epoch_times.csv"
TIMES_COLUMNS = ("epoch", "wall_s", "cpu_s", "load_avg")


def epoch_clock(path: Path, append: bool):
    """A callback that appends each epoch's wall seconds, process CPU seconds (all threads: the step's and the data
    workers') and the 1-minute load average to ``path`` (a fresh run starts the file again)."""
    import csv
    import os
    import time

    import keras

    if not append or not path.exists():
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(TIMES_COLUMNS)

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            wall, cpu = time.perf_counter() - self._start[0], time.process_time() - self._start[1]
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            with open(path, "a", newline="") as f:
                csv.writer(f).writerow((epoch, f"{wall:.1f}", f"{cpu:.1f}", f"{load:.2f}"))

    return EpochClock()


def write_run_record(config: TrainConfig, dataset) -> None:
    """``out/config.json``: the settings (what a resume is checked against), the data's splits and the machine;
    ``out/skipped.txt``: the rows or images of the data skipped as unreadable, where any were."""
    import keras

    out = Path(config.out)
    kept = {}
    if config.resume and (out / "config.json").exists():  # what a resume must keep insisting on
        try:
            before = json.loads((out / "config.json").read_text())
            kept = {k: before[k] for k in ("epochs_settled_by_time_budget",) if k in before}
        except (OSError, ValueError):
            pass
    from .datasets import write_problems

    write_problems(dataset, out)
    write_atomically(out / "config.json", json.dumps(
        {**kept, "config": dataclasses.asdict(config),
         # Absolute: a resume from another working folder must still find it (refuse_a_resume_that_would_start_over).
         "checkpoint_dir": str(config.resolved_checkpoint_dir().resolve()),
         "machine": machine_info(), "split_method": dataset.split_method,
         "splits": split_counts(dataset), "data_sha256": data_digest(dataset),
         "keras": keras.__version__, "backend": keras.backend.backend()}, indent=2))


def split_counts(dataset) -> dict:
    """Faces per split and class, as ``config.json`` records them."""
    return {k: {"n": len(v), "per_class": v.counts()} for k, v in dataset.splits.items()}


def data_digest(dataset) -> str:
    """SHA-256 of every split's faces and labels, in split order: what the run trained and was measured on."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for name in sorted(dataset.splits):
        split = dataset.splits[name]
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(split.x))  # the arrays' own buffers, as views_key hashes them: no copy
        digest.update(np.ascontiguousarray(split.y))
    return digest.hexdigest()


def check_same_data(config: TrainConfig, dataset) -> None:
    """Refuse a resume on other data than the checkpoint was trained on: it would go on training on other faces.

    By content, not by path: the faces per split and class that ``config.json`` recorded, and the digest of the faces
    themselves where it recorded one (since 2026-12-04), so that a moved copy of the data resumes and the same path
    holding other faces does not."""
    try:
        meta = json.loads((Path(config.out) / "config.json").read_text())
        before = meta["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing to compare with: trust the checkpoint
    now = json.loads(json.dumps(split_counts(dataset)))
    if now == before and meta.get("data_sha256") not in (None, data_digest(dataset)):
        raise UsageError(f"--resume: --data {config.data!r} holds other faces than the checkpoint in "
                         f"{config.resolved_checkpoint_dir()} was trained on (as many a split and class, but not the "
                         "same); resume with that data, or start again with --overwrite")
    if now != before:
        def said(counts):
            return ", ".join(f"{k} {v['n']}" for k, v in sorted(counts.items()))

        raise UsageError(f"--resume: --data {config.data!r} is not the data the checkpoint in "
                         f"{config.resolved_checkpoint_dir()} was trained on (faces per split: {said(before)} then, "
                         f"{said(now)} now); resume with that data, or start again with --overwrite")


def record_settled_epochs(config: TrainConfig, epochs: int) -> None:
    """Note in ``config.json`` the length a time budget settled on, so that a resume can insist on it."""
    path = Path(config.out) / "config.json"
    meta = json.loads(path.read_text())
    meta["epochs_settled_by_time_budget"] = epochs
    write_atomically(path, json.dumps(meta, indent=2))


WEIGHTS, METADATA = "latest.weights.h5", "training_metadata.json"  # BackupAndRestore's file names
PREVIOUS = ".bkp"  # its suffix for the previous epoch's copies (double_checkpoint)


def backup_epoch(backup_dir: Path) -> int | None:
    """Epochs completed according to a BackupAndRestore checkpoint, or None when there is none.

    A checkpoint cut off while being written (weights that do not open, metadata that do not parse) is replaced by
    the previous epoch's copies first, where there are intact ones (:func:`repair_backup`).
    """
    repair_backup(backup_dir)
    weights, meta = backup_dir / WEIGHTS, backup_dir / METADATA
    epoch = _epoch(weights, meta)
    if epoch is None and weights.exists() and meta.exists():
        raise UsageError(f"--resume: the checkpoint in {backup_dir} does not read back (cut off while being written) "
                         "and has no intact copy of the epoch before; start again without --resume (with --overwrite)")
    return epoch


def _epoch(weights: Path, meta: Path) -> int | None:
    """The epoch a weights + metadata pair records, or None unless both exist and read back whole."""
    if not weights.exists() or not meta.exists():
        return None
    try:
        epoch = int(json.loads(meta.read_text())["epoch"])
        import h5py

        with h5py.File(weights, "r"):
            pass
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return epoch


def repair_backup(backup_dir: Path) -> bool:
    """Put the previous epoch's checkpoint back when the latest is damaged; True when it did.

    Only when the previous pair reads back whole and the latest does not, or holds other weights under the same
    epoch; the history rows of the epoch lost are then dropped by the resume, as for any redone epoch.
    """
    import shutil

    import filecmp

    weights, meta = backup_dir / WEIGHTS, backup_dir / METADATA
    if not weights.exists() and not meta.exists():
        return False
    prev_weights, prev_meta = Path(f"{weights}{PREVIOUS}"), Path(f"{meta}{PREVIOUS}")
    latest, previous = _epoch(weights, meta), _epoch(prev_weights, prev_meta)
    if previous is None:
        return False
    if latest is None:
        why = "was cut off while being written"
    elif latest == previous and not filecmp.cmp(weights, prev_weights, shallow=False):
        # Keras copies the latest pair aside, then writes the weights, then the record: a stop between the last two
        # leaves epoch N's weights beside epoch N-1's record, which a resume would train on as N-1's.
        why = "holds weights newer than its record (stopped between writing the two)"
    else:
        return False
    shutil.copyfile(prev_weights, weights)
    shutil.copyfile(prev_meta, meta)
    print(f"the checkpoint in {backup_dir} {why}; resuming from the previous epoch's copy", file=sys.stderr)
    return True


def truncate_history(path: Path, epochs_done: int) -> None:
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
        import io

        text = io.StringIO()
        csv.writer(text).writerows(kept)
        write_atomically(path, text.getvalue())


def read_history(path: Path) -> dict[str, list[float]]:
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


#: Choices a checkpoint cannot survive: they change the weights' or the optimizer's structure, or the step count.
# seed fixes the 80/20 split and the batch order, faces how an image folder becomes faces: changing either would
# continue training on other data.
MUST_MATCH_ON_RESUME = ("arch", "batch_size", "optimizer", "teacher", "teacher_mode", "teacher_views", "seed",
                        "faces", "precision",
                        # The recipe: a checkpoint would take these, but the run would silently become another one
                        # (another learning-rate curve, other augmentations or targets) than config.json and the
                        # model card say.
                        # (--init is not here: a resume starts from the checkpoint, whatever --init names.)
                        "learning_rate", "weight_decay", "warmup_epochs", "label_smoothing", "augment",
                        "augment_engine", "mixup", "temperature", "distill_weight")
def _option(field: str) -> str:
    """The option that sets a TrainConfig field, as a resume refusal names it ("--lr" for learning_rate)."""
    if field == "learning_rate":
        return "--lr"
    if field == "warmup_epochs":  # no option of its own
        return "warmup_epochs (of --recipe)"
    return "--" + field.replace("_", "-")


#: What a run whose config.json predates a field did, for that field.
BEFORE_THE_FIELD_EXISTED = {"faces": "as-is", "teacher_views": 4, "precision": "float32"}


def check_resumable(config: TrainConfig, config_json: Path) -> None:
    """Refuse a resume whose checkpoint cannot fit the new settings; warn where it fits but the schedule changes."""
    try:
        meta = json.loads(config_json.read_text())
        before = meta["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing to compare with: trust the checkpoint
    now = dataclasses.asdict(config)
    settled = meta.get("epochs_settled_by_time_budget")
    if settled is None and before.get("time_budget_min") is not None:
        # The budget settles the length after the first epoch, just after that epoch's checkpoint: a stop between
        # the two leaves a checkpoint whose schedule no --epochs can be known to continue.
        raise UsageError(f"--resume: the checkpoint in {config.resolved_checkpoint_dir()} was stopped before its "
                         "--time-budget settled the run's length (one epoch in); start again with --overwrite")
    if settled is not None and config.epochs != settled:
        raise UsageError(
            f"--resume: this run settled on {count(settled, 'epoch')} under --time-budget (its learning-rate schedule "
            f"ends there); resume it with --epochs {settled}"
        )
    before = {**BEFORE_THE_FIELD_EXISTED, **before}
    if before.get("learning_rate") is None and "optimizer" in before:  # the default rate, as a value: --lr 0.02 is it
        before["learning_rate"] = default_lr(before["optimizer"])
    now["learning_rate"] = config.lr
    changed = [k for k in MUST_MATCH_ON_RESUME if k in before and before[k] != now.get(k)]
    if changed:
        diffs = ", ".join(f"{_option(k)} {before[k]!r} -> {now[k]!r}" for k in changed)
        raise UsageError(
            f"--resume: the checkpoint in {config.resolved_checkpoint_dir()} was made with different settings "
            f"({diffs}); resume with the original ones, or start again without --resume (with --overwrite)"
        )
    if "epochs" in before and config.epochs not in (before["epochs"], settled) and not config.paper_recipe:
        print(
            f"warning: --epochs changed from {before['epochs']} to {config.epochs} on resume: the cosine learning-rate "
            f"schedule is recomputed for {count(config.epochs, 'epoch')} and continues from the step reached, so the "
            "result differs from an uninterrupted run of either length",
            file=sys.stderr,
        )
