"""Average several trained models into one ``.keras`` file, e.g. an ensemble teacher for ``train --teacher``.

    python training/make_ensemble.py OUT.keras MODEL.keras MODEL.keras [...]

Each member keeps whatever test-time views its file has (a flip-TTA wrapper stays one). The result takes uint8
48x48x1 faces like every fer-batch model and loads with ``fer_batch.classify.load_keras_model``.
"""

from __future__ import annotations

import sys


def make_ensemble(out: str, members: list[str]) -> None:
    import keras
    from keras import layers

    from fer_batch.classify import load_keras_model

    if len(members) < 2:
        raise SystemExit("an ensemble needs at least two models")
    models = [load_keras_model(m) for m in members]
    for i, model in enumerate(models):
        model.name = f"member{i}_{model.name}"  # nested models need unique names
    inputs = keras.Input(shape=(48, 48, 1), name="face")
    outputs = layers.Average(name="ensemble_mean")([m(inputs) for m in models])
    keras.Model(inputs, outputs, name="ensemble").save(out)


if __name__ == "__main__":
    make_ensemble(sys.argv[1], sys.argv[2:])
