"""An ensemble of trained models as one ``.keras`` model: the mean of its members' probabilities.

Each member keeps whatever test-time views its file has (a flip-TTA wrapper stays one). The result takes uint8
48x48x1 faces like every fer-batch model, loads in Keras safe mode, and can be shipped, evaluated or used as a
``train --teacher``.
"""

from __future__ import annotations

from ..errors import UsageError


def ensemble(models: list, name: str = "ensemble"):
    """One Keras model averaging ``models`` (already loaded). They must take the same input."""
    import keras
    from keras import layers

    if len(models) < 2:
        raise UsageError(f"an ensemble needs at least two models, got {len(models)}")
    shapes = {tuple(m.input_shape[1:]) for m in models}
    if len(shapes) != 1:
        raise UsageError(f"ensemble members take different inputs: {sorted(shapes)}")
    for i, model in enumerate(models):
        model.name = f"member{i}_{model.name}"  # nested models need unique names
    inputs = keras.Input(shape=shapes.pop(), name="face")
    outputs = layers.Average(name="ensemble_mean")([m(inputs) for m in models])
    return keras.Model(inputs, outputs, name=name)


def ensemble_members(model) -> list:
    """The member models of an :func:`ensemble` (``[model]`` for a single network)."""
    import keras

    if any(layer.name == "ensemble_mean" for layer in model.layers):
        return [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return [model]
