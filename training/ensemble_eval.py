"""PublicTest accuracy of models and of their ensembles, under each test-time view set, from one pass per model.

    python training/ensemble_eval.py FER2013.csv[.gz] MODEL [MODEL ...] [--cache DIR]

MODEL is a packaged name (fast, accurate), a .keras file or a ``fer-batch train`` run folder; the data is a FER-2013
CSV or the runs' own data (its validation faces, held out as the runs held them: ``fer_batch.training.holdout``).
Each model's network (its TTA wrapper removed) is run once over the PublicTest rows for each of the ten ``crops``
views (``fer_batch.training.views``: the face and four 2 px shifts, each mirrored); ``none``, ``flip`` and
``crops`` are then means over subsets of those probabilities, and every ensemble of two or more of the models is
the mean of its members' means, as ``fer_batch.training.ensemble`` computes it. The probabilities are cached under
``--cache`` by the SHA-256 of the model file, of the faces and the crop shift, so a later call with one more model
runs only that one. A model that is itself an ensemble is refused: name its members. Selects on PublicTest only.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
from pathlib import Path

import numpy as np

VIEW_SETS = ("none", "flip", "crops")


def view_probs(net, x: np.ndarray) -> dict:
    """{(flip, dy, dx): probabilities} for the ten crops views, made with the shipped model's own layers
    (``view_layers`` gives, for each offset of ``CROP_OFFSETS``, the view and then its mirror image)."""
    from fer_batch.training.views import CROP_OFFSETS, CROP_SHIFT, view_layers

    keys = [(flip, dy * CROP_SHIFT, dx * CROP_SHIFT) for dy, dx in CROP_OFFSETS for flip in (False, True)]
    out = {}
    for key, chain in zip(keys, view_layers("crops"), strict=True):
        view = x
        for layer in chain:
            view = layer(view)
        out[key] = np.asarray(net.predict(np.asarray(view), batch_size=256, verbose=0))
    return out


def mean_over(probs: dict, views: str) -> np.ndarray:
    if views == "none":
        keys = [(False, 0, 0)]
    elif views == "flip":
        keys = [(False, 0, 0), (True, 0, 0)]
    elif views == "crops":
        keys = list(probs)
    else:
        raise ValueError(f"views {views!r}: choose one of {', '.join(VIEW_SETS)}")
    return np.mean([probs[k] for k in keys], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "fer-batch" / "ensemble-eval")
    args = ap.parse_args()

    from fer_batch.classify import load_keras_model
    from fer_batch.tflite_cache import file_sha256
    from fer_batch.errors import FerBatchError
    from fer_batch.training.holdout import holdout, model_file
    from fer_batch.training.ensemble import ensemble_members
    from fer_batch.training.saved_models import tta_inner
    from fer_batch.training.views import CROP_SHIFT

    try:
        val = holdout(args.data, args.models)["val"]
        files = {name: model_file(name) for name in args.models}
    except FerBatchError as exc:
        raise SystemExit(str(exc)) from None
    x = val.x.astype("float32")
    args.cache.mkdir(parents=True, exist_ok=True)
    # Cached probabilities hold for this model file, these faces and these views only.
    faces_key = hashlib.sha256(np.ascontiguousarray(val.x).tobytes()).hexdigest()[:12]
    probs = {}
    for name in args.models:
        path = files[name]
        digest = file_sha256(path)[:16]
        cached = args.cache / f"{digest}-{faces_key}-shift{CROP_SHIFT}.npz"
        if cached.exists():
            with np.load(cached) as f:
                probs[name] = {(bool(int(k[0])), int(k.split("_")[1]), int(k.split("_")[2])): f[k] for k in f.files}
        else:
            model = load_keras_model(path)
            if len(ensemble_members(model)) > 1:
                raise SystemExit(f"{name} is itself an ensemble; name its members instead")
            probs[name] = view_probs(tta_inner(model), x)
            # Whole or not at all: a cache cut off mid-write would be trusted by every later call.
            part = cached.with_name(cached.name + ".part.npz")
            np.savez(part, **{f"{int(f)}_{dy}_{dx}": p for (f, dy, dx), p in probs[name].items()})
            os.replace(part, cached)
    print(f"PublicTest, {len(x)} faces; accuracy with each test-time view set")
    print(f"{'model / ensemble':60s} " + " ".join(f"{v:>7s}" for v in VIEW_SETS))
    for size in range(1, len(args.models) + 1):
        for combo in itertools.combinations(args.models, size):
            row = [np.mean([mean_over(probs[m], v) for m in combo], axis=0) for v in VIEW_SETS]
            accs = [(p.argmax(1) == val.y).mean() for p in row]
            print(f"{' + '.join(combo)[:60]:60s} " + " ".join(f"{100 * a:6.2f}%" for a in accs))


if __name__ == "__main__":
    main()
