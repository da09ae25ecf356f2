"""How much more test-time views would add: PublicTest accuracy of a model's network averaged over its mirror
image and small shifts (reflected borders), beside the flip alone.

    python training/tta_views.py MODEL.keras FER2013.csv[.gz] [--shift 2]

Prints each view's accuracy, then flip, flip x 5 shifts (10 views) and flip x 9 shifts (18 views).
"""

from __future__ import annotations

import argparse

import numpy as np

SHIFTS5 = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
SHIFTS9 = SHIFTS5 + [(1, 1), (-1, -1), (1, -1), (-1, 1)]


def shifted(x: np.ndarray, dy: int, dx: int, pad: int) -> np.ndarray:
    p = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return p[:, pad + dy:pad + dy + h, pad + dx:pad + dx + w, :]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--shift", type=int, default=2, help="pixels of each shift (default 2)")
    args = ap.parse_args()

    from fer_batch.classify import load_keras_model
    from fer_batch.errors import FerBatchError
    from fer_batch.training.holdout import holdout, model_file
    from fer_batch.training.train import tta_inner

    try:
        val = holdout(args.data, [args.model])["val"]
        net = tta_inner(load_keras_model(model_file(args.model)))
    except FerBatchError as exc:
        raise SystemExit(str(exc)) from None
    x = val.x.astype("float32")
    probs = {}
    for flip in (0, 1):
        xf = x[:, :, ::-1, :] if flip else x
        for dy, dx in SHIFTS9:
            view = shifted(xf, dy * args.shift, dx * args.shift, args.shift)
            probs[flip, dy, dx] = np.asarray(net.predict(view, batch_size=256, verbose=0))
            print(f"view flip={flip} shift=({dy * args.shift},{dx * args.shift}): "
                  f"{(probs[flip, dy, dx].argmax(1) == val.y).mean():.4f}", flush=True)

    def accuracy(keys) -> float:
        return float((sum(probs[k] for k in keys).argmax(1) == val.y).mean())

    print(f"flip: {accuracy([(0, 0, 0), (1, 0, 0)]):.4f}")
    print(f"flip x 5 shifts: {accuracy([(f, *s) for f in (0, 1) for s in SHIFTS5]):.4f}")
    print(f"flip x 9 shifts: {accuracy(list(probs)):.4f}")


if __name__ == "__main__":
    main()
