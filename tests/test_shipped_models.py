"""The packaged models keep their accuracy: a fixed, seeded sample of 1,000 FER-2013 PublicTest faces.

Each model's floor is the accuracy promised for it, less 2 points for the sampling error of 1,000 faces (a standard
error of about 1.4 points at 70%). Skips a model whose file is not shipped yet, and everything when the shared
dataset is absent.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.data

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013.csv.gz"
FLOOR = {"fast": 0.70, "accurate": 0.72}
MARGIN = 0.02
SAMPLE, SEED = 1000, 2013


@pytest.fixture(scope="module")
def public_test_sample():
    """``(x, y)``: 1,000 PublicTest rows drawn with a fixed seed, in file order; uint8 (1000, 48, 48, 1)."""
    if not DATA.is_file():
        pytest.skip(f"shared dataset not found at {DATA}")
    from fer_batch.training.datasets import parse_pixels

    with gzip.open(DATA, "rt", newline="") as f:
        rows = [(r["emotion"], r["pixels"]) for r in csv.DictReader(f) if r["Usage"].strip() == "PublicTest"]
    assert len(rows) >= SAMPLE, f"{DATA} has only {len(rows)} PublicTest rows"
    chosen = np.sort(np.random.default_rng(SEED).choice(len(rows), size=SAMPLE, replace=False))
    x = np.stack([parse_pixels(rows[i][1]) for i in chosen])[..., None]
    y = np.array([int(rows[i][0]) for i in chosen])
    assert set(y.tolist()) == set(range(7))
    return x, y


@pytest.mark.parametrize("name", sorted(FLOOR))
def test_packaged_model_accuracy(name, request):
    from fer_batch.classify import MODELS_DIR, PACKAGED, Classifier

    assert name in PACKAGED
    path = MODELS_DIR / f"{name}.keras"
    if not path.is_file():
        pytest.skip(f"{path} is not shipped yet")
    x, y = request.getfixturevalue("public_test_sample")
    classifier = Classifier(name)  # the product's own loader: safe mode, interface checked
    probs = np.concatenate([classifier.predict(x[i:i + 256]) for i in range(0, len(x), 256)])
    accuracy = float((probs.argmax(axis=1) == y).mean())
    floor = FLOOR[name] - MARGIN
    print(f"{name}: accuracy {accuracy:.4f} on {SAMPLE} PublicTest faces (floor {floor:.2f})")
    assert accuracy >= floor, f"{name}.keras: accuracy {accuracy:.4f} on {SAMPLE} PublicTest faces < {floor:.2f}"
