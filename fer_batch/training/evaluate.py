"""Metrics, figures and the terminal table for a model on a labelled split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .metrics import classification_report, format_report
from .plots import plot_confusion, plot_history


def predict_probs(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities for uint8 faces, in batches, without Keras's per-call retracing of ``predict``."""
    out = []
    for i in range(0, len(x), batch_size):
        out.append(np.asarray(model(x[i:i + batch_size].astype("float32"), training=False)))
    return np.concatenate(out) if out else np.zeros((0, 7), np.float32)


def evaluate_model(model, split, batch_size: int = 256) -> dict:
    """Classification report of ``model`` on a :class:`~fer_batch.training.datasets.Split`."""
    probs = predict_probs(model, split.x, batch_size)
    return classification_report(split.y, probs.argmax(axis=1))


def write_report(out: Path, reports: dict[str, dict], history: dict | None = None, extra: dict | None = None) -> dict:
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
    for name, report in reports.items():
        print(format_report(report, title=f"== {name} =="))
    return metrics
