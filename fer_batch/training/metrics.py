"""Classification metrics for the seven emotions, as plain numbers that go straight into ``metrics.json``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..labels import EMOTIONS, NUM_CLASSES

if TYPE_CHECKING:  # numpy loads with the first report, so that `fer-batch models` can print tables without it
    import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Counts ``cm[true, predicted]``."""
    import numpy as np

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside 0-{num_classes - 1}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_report(y_true, y_pred) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    A class with no predictions (or no examples) gets precision (or recall) 0, the usual convention, so one empty
    class cannot make the macro average undefined. Macro-F1 averages over the classes that occur in ``y_true`` or
    ``y_pred`` (scikit-learn's default): a class absent from both, as in a dataset of only some emotions, neither
    helps nor hurts; a class predicted but absent from the labels counts with F1 0.
    """
    import numpy as np

    cm = confusion_matrix(y_true, y_pred)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = cm.sum()
    present = (support > 0) | (predicted > 0)
    return {
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(EMOTIONS)
        },
        "confusion_matrix": cm.tolist(),
    }


def per_class_table(report: dict) -> dict:
    """A report's per-class precision, recall, F1 (rounded to 4 places) and support, as a model card gives them."""
    return {name: {k: round(v, 4) for k, v in row.items()} for name, row in report["per_class"].items()}


def per_class_lines(per_class: dict, indent: str = "") -> list[str]:
    """The terminal's per-class table: a heading, then precision, recall, F1 and support for each emotion (recall
    and F1 shown as ``-`` for a class without labelled faces, where they mean nothing)."""
    def row(name, m):
        if int(m["support"]):
            scores = f"{m['recall']:>8.3f}{m['f1']:>8.3f}"
        else:
            scores = f"{'-':>8}{'-':>8}"
        return f"{indent}{name:<10}{m['precision']:>10.3f}{scores}{int(m['support']):>9d}"

    return [f"{indent}{'class':<10}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}",
            *(row(name, m) for name, m in per_class.items())]


def format_report(report: dict, title: str = "") -> str:
    """A short per-class table for the terminal."""
    lines = [title] if title else []
    lines += per_class_lines(report["per_class"])
    lines.append(f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  (n={report['n']})")
    absent = [name for name, m in report["per_class"].items() if not int(m["support"])]
    if absent and report["n"]:
        lines.append(f"no labelled faces of {', '.join(absent)} here; the model still chooses among all seven, "
                     "and macro-F1 counts a class only where it is labelled or predicted")
    return "\n".join(lines)
