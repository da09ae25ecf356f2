"""Figures for training runs and evaluations (matplotlib, headless Agg canvas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels import EMOTIONS


def _figure(**kwargs):
    # Figure objects on an Agg canvas never touch pyplot's global backend state or need a display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def confusion_cells(cm) -> tuple[np.ndarray, list[list[str]]]:
    """Each cell's share of its true class (NaN in the row of a class with no faces) and its text: the share and
    the count, or "-" in such a row (as the terminal table writes it: 0.00 would read as a recall of 0)."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.full_like(cm, np.nan), where=rows > 0)
    texts = [[f"{share:.2f}\n{int(n)}" if np.isfinite(share) else "-" for share, n in zip(r, c)]
             for r, c in zip(norm, cm)]
    return norm, texts


def plot_confusion(cm, path: str | Path, title: str = "Confusion matrix") -> Path:
    """Row-normalised confusion matrix with counts, saved as PNG; the row of a class with no faces is grey."""
    import matplotlib

    norm, texts = confusion_cells(cm)
    fig = _figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#e6e6e6")
    im = ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of true class")
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_history(history: dict[str, list[float]], path: str | Path) -> Path:
    """Loss and accuracy per epoch, training and validation side by side."""
    fig = _figure(figsize=(10, 4), layout="constrained")
    for k, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, k + 1)
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if history.get(key):
                ax.plot(range(1, len(history[key]) + 1), history[key], label=label)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
