"""PublicTest accuracy of models on all its faces, on those that are also Training faces (pixel for pixel), and on
the others: FER-2013 repeats 246 of its 3,589 PublicTest faces in Training, which a network may have learnt.

    python training/unseen_eval.py ../shared/data/fer2013.csv.gz fast accurate [MODEL.keras ...]

Each model runs as ``fer-batch analyze`` runs it (``Classifier``, runtime auto).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a FER-2013 CSV with Training and PublicTest rows")
    parser.add_argument("models", nargs="+", help="packaged names or .keras files")
    args = parser.parse_args()
    from fer_batch.classify import Classifier
    from fer_batch.training.datasets import load_dataset, seen_in_training

    dataset = load_dataset(args.data)
    val, seen = dataset["val"], seen_in_training(dataset)["val"]
    print(f"PublicTest: {len(val):,} faces, {seen.sum():,} of them also Training faces")
    for name in args.models:
        started = time.perf_counter()
        classifier = Classifier(name)
        probs = np.concatenate([classifier.predict(val.x[i:i + 256, ..., 0]) for i in range(0, len(val), 256)])
        right = probs.argmax(axis=1) == val.y
        print(f"{name} ({classifier.runtime}): all {right.mean():.2%}, also in Training {right[seen].mean():.2%} "
              f"({right[seen].sum()}/{seen.sum()}), not in Training {right[~seen].mean():.2%} "
              f"({right[~seen].sum()}/{(~seen).sum()}); {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
