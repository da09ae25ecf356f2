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
    ``model.keras``). A packaged name is the packaged model, as everywhere, also beside a folder of that name."""
    from ..classify import PACKAGED, resolve_model

    folder = Path(spec).expanduser()
    if str(spec) not in PACKAGED and folder.is_dir() and (folder / "model.keras").is_file():
        return folder / "model.keras"
    return resolve_model(spec, option=option)


def run_settings(model: str | Path) -> list[dict]:
    """The ``fer-batch train`` settings of the runs that made ``model``: a run folder's (or a model file's inside
    one: its ``config.json``), or those a card beside a shipped file records (``training_config``, one per member of
    an ensemble); none for a packaged model (trained on FER-2013, whose splits are its own) or a file without either.
    """
    from ..classify import PACKAGED

    if str(model) in PACKAGED:
        return []
    path = Path(model).expanduser()
    folder = path if path.is_dir() else path.parent
    config = _json(folder / "config.json")
    settings = config.get("config") if isinstance(config, dict) else None
    if isinstance(settings, dict) and "arch" in settings:
        return [_checked(settings, folder / "config.json")]
    card = _json(path.with_suffix(".json")) if path.suffix == ".keras" else None
    if not isinstance(card, dict):
        return []
    found = [card.get("training_config")] + [m.get("training_config") for m in card.get("members") or []
                                              if isinstance(m, dict)]
    return [_checked(s, path.with_suffix(".json")) for s in found if isinstance(s, dict) and s]


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _checked(settings: dict, where: Path) -> dict:
    """``settings`` with a whole-number seed and a face cutting (None: as-is), else :class:`UsageError` naming the
    file that gives them."""
    seed, faces = settings.get("seed", 0), settings.get("faces") or "as-is"
    if isinstance(seed, bool) or not str(seed).lstrip("-").isdigit():
        raise UsageError(f"{str(where)!r} gives seed {seed!r}: expected a whole number, as fer-batch train writes it")
    if faces not in ("as-is", "detect"):
        raise UsageError(f"{str(where)!r} gives faces {faces!r}: expected as-is or detect, as fer-batch train "
                         "writes it")
    return {**settings, "seed": int(seed), "faces": faces}


def holdout(data: str | Path, models=(), option: str = "--data"):
    """The dataset of ``data`` as the runs of ``models`` (run folders, model files, shipped files with a card)
    split and cut it (their ``--seed`` and ``--faces``; seed 0 and faces as-is for models without a run), with a
    validation split to measure on. :class:`UsageError` where runs cut faces differently, where data without splits
    was held out by different seeds (no faces are unseen by all of them), or where ``data`` has no validation faces.
    """
    from .datasets import load_dataset

    settings = [s for model in models for s in run_settings(model)]
    faces = {s["faces"] for s in settings} or {"as-is"}
    if len(faces) > 1:
        raise UsageError(f"{option} {str(data)!r}: the runs cut the faces differently (--faces "
                         f"{', '.join(sorted(faces))}); measure them one by one")
    seeds = sorted({s["seed"] for s in settings}) or [0]
    face = faces.pop()
    try:
        dataset = load_dataset(str(data), seed=seeds[0], faces=face)
    except UsageError as exc:  # an option the runs were trained with, not one given here
        raise UsageError(f"{option} {str(data)!r}, read as the runs were trained (--faces {face}): {exc}") from None
    if dataset.split_method.startswith("stratified") and len(seeds) > 1:
        raise UsageError(f"{option} {str(data)!r} has no splits of its own, and the runs held out different faces "
                         f"(--seed {', '.join(map(str, seeds))}): no faces are unseen by all of them")
    val = dataset.get("val")
    if val is None or not len(val):
        raise UsageError(f"{option} {str(data)!r} has no validation faces to measure on (FER-2013's PublicTest rows, "
                         "a val/ folder, or any data without splits of its own, of which `fer-batch train` holds "
                         "out 20%)")
    return dataset
