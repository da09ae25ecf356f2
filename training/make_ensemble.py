"""Average several trained models into one ``.keras`` file, e.g. an ensemble teacher for ``train --teacher`` or a
shipped ``accurate`` (see ``fer_batch.training.ensemble``).

    python training/make_ensemble.py OUT.keras MODEL MODEL [...]

MODEL is a packaged name (fast, accurate), a .keras file or a ``fer-batch train`` run folder; each is used as saved
(with its own TTA wrapper, if it has one).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def make_ensemble(out: str | Path, members: list[str]) -> None:
    from fer_batch.classify import load_keras_model
    from fer_batch.training.ensemble import ensemble
    from fer_batch.training.holdout import model_file

    ensemble([load_keras_model(model_file(m)) for m in members]).save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the ensemble's .keras file to write")
    ap.add_argument("members", nargs="+", metavar="MODEL", help="two or more models to average")
    args = ap.parse_args()
    if args.out.suffix != ".keras":
        ap.error(f"OUT must be a .keras file, got {str(args.out)!r}")
    if len(args.members) < 2:
        ap.error(f"an ensemble needs at least two models, got {len(args.members)}")
    make_ensemble(args.out, args.members)
    print(f"wrote {args.out}: the mean of {', '.join(args.members)}")


if __name__ == "__main__":
    main()
