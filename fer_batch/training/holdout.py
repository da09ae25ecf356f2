"""The faces a trained model is measured on again after its run (shipping, ensembles, test-time views): its run's
validation split, held out as the run held it out.

Data without splits of its own (an image folder without ``train/``/``val/``, a CSV without a ``Usage`` column) is
split 80/20 by ``fer-batch train --seed``, and photos are cut by ``--faces``: a re-measure with other settings counts
faces the model learned from (a seed-3 run measured on seed 0's holdout: 22 of its 28 faces were training faces).
The scripts under ``training/`` take both from the runs' ``config.json`` here.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError


def model_file(spec: str | Path, option: str = "MODEL") -> Path:
    """The ``.keras`` file for a packaged name, a ``.keras`` file or a ``fer-batch train`` run folder (its
    ``model.keras``)."""
    from ..classify import resolve_model

    folder = Path(spec).expanduser()
    if folder.is_dir() and (folder / "model.keras").is_file():
        return folder / "model.keras"
    return resolve_model(spec, option=option)


def run_settings(model: str | Path) -> dict | None:
    """The ``fer-batch train`` settings of the run that made ``model`` (a run folder, or a model file inside one:
    its ``config.json``); None for a packaged model or a file without a run around it."""
    folder = Path(model).expanduser()
    folder = folder if folder.is_dir() else folder.parent
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    settings = config.get("config") if isinstance(config, dict) else None
    return settings if isinstance(settings, dict) and "arch" in settings else None


def holdout(data: str | Path, models=(), option: str = "--data"):
    """The dataset of ``data`` as the runs of ``models`` (run folders or model files) split and cut it (their
    ``--seed`` and ``--faces``; seed 0 and faces as-is for models without a run), with a validation split to measure
    on. :class:`UsageError` where runs cut faces differently, where data without splits was held out by different
    seeds (no faces are unseen by all of them), or where ``data`` has no validation faces."""
    from .datasets import load_dataset

    settings = [s for s in map(run_settings, models) if s is not None]
    faces = {str(s.get("faces", "as-is")) for s in settings} or {"as-is"}
    if len(faces) > 1:
        raise UsageError(f"{option} {str(data)!r}: the runs cut the faces differently (--faces "
                         f"{', '.join(sorted(faces))}); measure them one by one")
    seeds = sorted({int(s.get("seed", 0)) for s in settings}) or [0]
    dataset = load_dataset(str(data), seed=seeds[0], faces=faces.pop())
    if dataset.split_method.startswith("stratified") and len(seeds) > 1:
        raise UsageError(f"{option} {str(data)!r} has no splits of its own, and the runs held out different faces "
                         f"(--seed {', '.join(map(str, seeds))}): no faces are unseen by all of them")
    val = dataset.get("val")
    if val is None or not len(val):
        raise UsageError(f"{option} {str(data)!r} has no validation faces to measure on (FER-2013's PublicTest rows, "
                         "a val/ folder, or any data without splits of its own, of which `fer-batch train` holds "
                         "out 20%)")
    return dataset
