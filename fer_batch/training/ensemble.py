"""Trained models combined into one ``.keras`` model: an ensemble (the mean of the members' probabilities, at the
members' summed cost) or a weight average (one network whose weights are the members' mean, at one member's cost).

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


def weight_average(models: list, names: list[str] | None = None):
    """One network whose every weight (batch-norm statistics included) is the mean of ``models``' (a "model
    soup", Wortsman et al. 2022); ``names`` (default ``model 0``, ``model 1``, ...) name them in errors.

    Only networks fine-tuned one from another (``train --init``) share a basin in which their mean is itself a
    good network; two networks trained from different starts average to noise, so measure the result. The members
    must be the same float network: the same layers (nested ones included) holding weights of the same shapes, in
    the same order. Quantized models are refused: an int8 kernel and its scale do not average separately.
    """
    import keras
    import numpy as np

    from ..dequantize import is_quantized

    names = names or [f"model {i}" for i in range(len(models))]
    if len(models) < 2:
        raise UsageError(f"a weight average needs at least two models, got {len(models)}")

    def layer_types(model):  # nested models (a TTA wrapper's network) included
        return [t for layer in model.layers
                for t in [type(layer).__name__, *(layer_types(layer) if isinstance(layer, keras.Model) else [])]]

    weights = [m.get_weights() for m in models]
    for name, model, ws in zip(names, models, weights, strict=True):
        if is_quantized(model) or any(not np.issubdtype(w.dtype, np.floating) for w in ws):
            raise UsageError(f"{name} is quantized; average the float models it was made from")
    types, shapes = layer_types(models[0]), [w.shape for w in weights[0]]
    for i in range(1, len(models)):
        other = layer_types(models[i])
        if other != types:
            raise UsageError(f"{names[i]} is not the same network as {names[0]}: other layers ({len(other)} against "
                             f"{len(types)}, or in another order); only copies of one architecture can be averaged")
        got = [w.shape for w in weights[i]]
        if got != shapes:
            k = next((k for k, (a, b) in enumerate(zip(got, shapes)) if a != b), min(len(got), len(shapes)))
            raise UsageError(f"{names[i]} is not the same network as {names[0]}: weight array {k} has shape "
                             f"{got[k] if k < len(got) else 'none'} against {shapes[k] if k < len(shapes) else 'none'}"
                             "; only copies of one architecture can be averaged")
    soup = keras.models.clone_model(models[0])
    soup.set_weights([np.mean([ws[k] for ws in weights], axis=0).astype(weights[0][k].dtype)
                      for k in range(len(weights[0]))])
    return soup
