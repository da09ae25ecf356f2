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
    parser.add_argument("data", help="a FER-2013 CSV with Training and PublicTest rows (or other data with a "
                                     "validation split: its faces also among the training ones are counted apart)")
    parser.add_argument("models", nargs="+", help="packaged names, .keras files or fer-batch train run folders")
    args = parser.parse_args()
    from fer_batch.classify import Classifier
    from fer_batch.errors import FerBatchError
    from fer_batch.training.datasets import seen_in_training
    from fer_batch.training.holdout import holdout, model_file

    try:
        dataset = holdout(args.data, args.models)
        files = [model_file(name) for name in args.models]
    except FerBatchError as exc:
        raise SystemExit(str(exc)) from None
    val = dataset["val"]
    seen = seen_in_training(dataset).get("val", np.zeros(len(val), bool))  # data without a training split: none
    print(f"PublicTest: {len(val):,} faces, {seen.sum():,} of them also Training faces")
    for name, path in zip(args.models, files):
        started = time.perf_counter()
        classifier = Classifier(path)
        probs = np.concatenate([classifier.predict(val.x[i:i + 256, ..., 0]) for i in range(0, len(val), 256)])
        right = probs.argmax(axis=1) == val.y
        print(f"{name} ({classifier.runtime}): all {right.mean():.2%}, also in Training {_share(right, seen)}, "
              f"not in Training {_share(right, ~seen)}; {time.perf_counter() - started:.0f} s")


def _share(right: np.ndarray, mask: np.ndarray) -> str:
    """The accuracy on the faces ``mask`` picks, with its counts; "none" where it picks none."""
    return f"{right[mask].mean():.2%} ({right[mask].sum()}/{mask.sum()})" if mask.any() else "none"


if __name__ == "__main__":
    main()
