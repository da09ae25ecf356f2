"""Generated 48x48 "faces" whose class is visible in their structure, and writers for the FER-2013 layouts.

Each class draws its own bright shape at a jittered place over noise, so a tiny network learns something in one
epoch: a test that trains can tell a working loop from a broken one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fer_batch.labels import EMOTIONS

SIZE = 48


def make_faces(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x`` uint8 (N, 48, 48), ``y`` int64 (N,), classes interleaved (0, 1, ..., 6, 0, 1, ...)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    faces, labels = [], []
    for _ in range(n_per_class):
        for label in range(len(EMOTIONS)):
            img = rng.normal(90, 12, (SIZE, SIZE))
            cy, cx = rng.integers(18, 30, size=2)
            if label == 0:  # horizontal bar
                mask = (abs(yy - cy) < 3) & (abs(xx - cx) < 14)
            elif label == 1:  # vertical bar
                mask = (abs(xx - cx) < 3) & (abs(yy - cy) < 14)
            elif label == 2:  # filled disk
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < 10**2
            elif label == 3:  # square outline
                d = np.maximum(abs(yy - cy), abs(xx - cx))
                mask = (d > 9) & (d < 13)
            elif label == 4:  # diagonal line
                mask = (abs((yy - cy) - (xx - cx)) < 3) & (abs(yy - cy) < 13)
            elif label == 5:  # ring
                r2 = (yy - cy) ** 2 + (xx - cx) ** 2
                mask = (r2 > 8**2) & (r2 < 12**2)
            else:  # nothing but noise
                mask = np.zeros((SIZE, SIZE), bool)
            img[mask] = rng.normal(130 + 20 * label, 6)  # brightness too: learnable in a few steps
            faces.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(faces), np.asarray(labels, dtype=np.int64)


def pixels_text(face: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in face.reshape(-1))


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, usage: list[str] | None = None) -> Path:
    """Kaggle layout: ``emotion,pixels[,Usage]``."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels"] + (["Usage"] if usage is not None else []))
        for i, (face, label) in enumerate(zip(x, y)):
            w.writerow([int(label), pixels_text(face)] + ([usage[i]] if usage is not None else []))
    return path


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, splits: list[str] | None = None,
                 names: dict[int, str] | None = None) -> Path:
    """``ROOT/<split>/<emotion>/NNNN.png`` (or ``ROOT/<emotion>/...`` without ``splits``), 48x48 grayscale PNGs."""
    from PIL import Image

    names = names or dict(enumerate(EMOTIONS))
    for i, (face, label) in enumerate(zip(x, y)):
        folder = Path(root) / (splits[i] if splits else "") / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(folder / f"{i:04d}.png")
    return Path(root)
