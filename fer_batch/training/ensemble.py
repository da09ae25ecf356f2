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


def weight_average(models: list):
    """One network whose every weight (batch-norm statistics included) is the mean of ``models``' (a "model
    soup", Wortsman et al. 2022).

    Only networks fine-tuned one from another (``train --init``) share a basin in which their mean is itself a
    good network; two networks trained from different starts average to noise, so measure the result. The members
    must be the same network: the same layers holding weights of the same shapes, in the same order.
    """
    import keras
    import numpy as np

    if len(models) < 2:
        raise UsageError(f"a weight average needs at least two models, got {len(models)}")
    weights = [m.get_weights() for m in models]
    shapes = [[w.shape for w in ws] for ws in weights]
    for i, model in enumerate(models[1:], start=1):
        if shapes[i] != shapes[0] or [type(x) for x in model.layers] != [type(x) for x in models[0].layers]:
            raise UsageError(f"model {i} ({model.name}) is not the same network as model 0 ({models[0].name}): "
                             f"{len(shapes[i])} weight arrays against {len(shapes[0])}, or other layers or "
                             "shapes; only copies of one architecture can be averaged")
    soup = keras.models.clone_model(models[0])
    soup.set_weights([np.mean([ws[k] for ws in weights], axis=0).astype(weights[0][k].dtype)
                      for k in range(len(weights[0]))])
    return soup
