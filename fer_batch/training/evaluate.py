"""Metrics, figures and the terminal table for a model on a labelled split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .metrics import classification_report, format_report
from .plots import plot_confusion, plot_history


def predict_probs(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities for uint8 faces, in batches, without Keras's per-call retracing of ``predict``."""
    import keras

    out = []
    for i in range(0, len(x), batch_size):
        # convert_to_numpy, not np.asarray: under the torch backend the output is a (possibly CUDA) tensor.
        out.append(keras.ops.convert_to_numpy(model(x[i:i + batch_size].astype("float32"), training=False)))
    return np.concatenate(out) if out else np.zeros((0, 7), np.float32)


def evaluate_model(model, split, batch_size: int = 256, flip_margin: float | None = None) -> dict:
    """Classification report of ``model`` on a :class:`~fer_batch.training.datasets.Split`; with ``flip_margin``,
    the faces it is that unsure of get a second, mirrored look, as the classifier gives them
    (:func:`fer_batch.unsure_faces.second_look`)."""
    probs = predict_probs(model, split.x, batch_size).astype(np.float64)
    if flip_margin is not None:
        from ..unsure_faces import near_tie_rows, second_look

        probs = second_look(probs, split.x, lambda faces: predict_probs(model, faces, batch_size),
                            near_tie_rows(probs, flip_margin))
    return classification_report(split.y, probs.argmax(axis=1))


def split_reports(model, dataset, tta: str) -> dict:
    """Reports of ``model`` (a saved run's model, its TTA wrapper on) on ``dataset``'s validation and test splits,
    where present; for a model with test-time views (``tta`` other than ``"none"``) also of the network inside the
    wrapper, as ``<split>_no_tta``."""
    from .saved_models import tta_inner

    reports = {}
    for name in ("val", "test"):
        split = dataset.get(name)
        if split is not None and len(split):
            reports[name] = evaluate_model(model, split)
            if tta != "none":
                reports[f"{name}_no_tta"] = evaluate_model(tta_inner(model), split)
    return reports


def write_report(out: Path, reports: dict[str, dict], history: dict | None = None, extra: dict | None = None,
                 *, print_tables: bool = True) -> dict:
    """Write ``metrics.json``, one confusion-matrix PNG per split and the training curves."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {**(extra or {}), "splits": reports}
    for name, report in reports.items():
        plot_confusion(report["confusion_matrix"], out / f"confusion_{name}.png",
                       title=f"{name}: accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}")
    if history:
        plot_history(history, out / "curves.png")
        metrics["history"] = history
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if print_tables:
        for name, report in reports.items():
            print(format_report(report, title=f"== {name} =="))
    return metrics


#: ``--split`` values of ``fer-batch evaluate``.
SPLIT_CHOICES = ("val", "test", "train", "all")


def select_splits(dataset, requested=None, *, seed: int = 0, val_fraction: float = 0.2) -> dict:
    """The named :class:`~fer_batch.training.datasets.Split` objects to evaluate.

    ``dataset`` is loaded with ``holdout=False``. With ``requested`` None: every split present except ``train``
    (FER-2013: PublicTest as ``val`` and PrivateTest as ``test``), or every row (``all``) for data without splits.
    ``all`` is every row of the file together. ``val``/``train`` of data without splits are the seeded, stratified
    holdout and remainder that ``fer-batch train`` makes with the same ``seed`` and ``val_fraction``.
    """
    from ..errors import UsageError
    from .datasets import HOLDOUT_TOO_SMALL, Split, stratified_split

    have = dataset.splits
    unsplit = set(have) == {"all"}
    if not requested:
        if unsplit:
            return {"all": have["all"]}
        chosen = [name for name in ("val", "test") if name in have]
        if not chosen:
            raise UsageError(
                f"{dataset.source} has only a {', '.join(sorted(have))} split and evaluating on training data is "
                "rarely meant; pass --split train (or --split all) to do it anyway"
            )
        requested = chosen
    result = {}
    for name in dict.fromkeys(requested):
        if name not in SPLIT_CHOICES:
            raise UsageError(f"--split {name!r} is not allowed; choose one of {', '.join(SPLIT_CHOICES)}")
        if name == "all":
            parts = list(have.values())
            result["all"] = parts[0] if len(parts) == 1 else Split(
                np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))
        elif unsplit and name in ("train", "val"):
            train, val = stratified_split(have["all"], val_fraction=val_fraction, seed=seed)
            result[name] = train if name == "train" else val
        elif name in have:
            result[name] = have[name]
        else:
            present = "no splits (use --split all, or val/train for the seeded 80/20 holdout)" if unsplit \
                else f"the splits {', '.join(sorted(have))}"
            raise UsageError(f"--split {name}: {dataset.source} has no {name} split; it has {present}")
        if name in result and not len(result[name]):  # an accuracy of 0 over no faces would read as a measurement
            from ..errors import DatasetError

            why = f" ({HOLDOUT_TOO_SMALL})" if unsplit and name == "val" else ""
            raise DatasetError(f"--split {name}: {dataset.source} has no faces in its {name} split{why}")
    return result


def evaluate(model, data, out: str | Path | None = None, splits=None, *, seed: int = 0,
             batch_size: int = 256, faces: str = "as-is") -> dict:
    """Evaluate ``model`` on the labelled ``data`` and return ``{"model", "data", "splits": {name: report}}``.

    ``model`` is a Keras model, a packaged name (``fast``, ``accurate``) or a ``.keras`` path (loaded with
    :func:`fer_batch.classify.load_keras_model`, safe mode); ``data`` a FER-2013 CSV, an image folder or a loaded
    :class:`~fer_batch.training.datasets.Dataset`; ``splits`` as in :func:`select_splits`; ``faces`` as in
    :func:`~fer_batch.training.datasets.load_dataset` (for an image folder of photos: ``"detect"``). With ``out``, writes
    ``metrics.json`` and ``confusion_<split>.png`` there. Reports are those of
    :func:`~fer_batch.training.metrics.classification_report`.
    """
    from .datasets import Dataset, load_dataset

    if isinstance(splits, str):
        splits = [splits]
    if out is not None:
        from ..config import check_not_a_training_run, check_output_dir, check_outside_data

        check_output_dir("--out", out)  # before the data is read and the model run, not after
        check_not_a_training_run("--out", out)
        if not isinstance(data, Dataset):
            check_outside_data("--out", out, data)
    model_name, margin = getattr(model, "name", None), None
    if isinstance(model, (str, Path)):
        from ..classify import flip_margin, load_keras_model, resolve_model

        path = resolve_model(model)
        model_name, margin = str(model), flip_margin(path)  # measured as analyze runs it
        model = load_keras_model(path)
    dataset = data if isinstance(data, Dataset) else load_dataset(data, seed=seed, holdout=False, faces=faces)
    chosen = select_splits(dataset, splits, seed=seed)
    reports = {name: evaluate_model(model, split, batch_size, margin) for name, split in chosen.items()}
    info = {"model": model_name, "data": dataset.source, "split_method": dataset.split_method,
            "skipped_rows": len(dataset.problems)}
    if out is not None:
        return write_report(Path(out), reports, extra=info, print_tables=False)
    return {**info, "splits": reports}
