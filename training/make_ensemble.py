"""Average several trained models into one ``.keras`` file, e.g. an ensemble teacher for ``train --teacher`` or a
shipped ``accurate`` (see ``fer_batch.training.ensemble``).

    python training/make_ensemble.py OUT.keras MODEL.keras MODEL.keras [...]
"""

from __future__ import annotations

import sys


def make_ensemble(out: str, members: list[str]) -> None:
    from fer_batch.classify import load_keras_model
    from fer_batch.training.ensemble import ensemble

    ensemble([load_keras_model(m) for m in members]).save(out)


if __name__ == "__main__":
    make_ensemble(sys.argv[1], sys.argv[2:])
