"""Smaller copies of trained networks for shipping: convolution kernels stored as int8.

Keras's ``Model.quantize("int8")`` covers Dense layers only; :func:`int8_convolutions` covers the Conv2D layers
with :class:`fer_batch.layers.Int8Conv2D`, so that an ensemble holding a wide VGG still fits the 25 MB a packaged
model may take.
"""

from __future__ import annotations


def int8_convolutions(net):
    """A copy of the functional model ``net`` with every ``Conv2D`` layer stored as int8 (one scale per output
    channel) and every other layer, weights included, as it is. The copy computes in float: only the kernels'
    rounding differs."""
    import keras

    from ..layers import Int8Conv2D

    def clone(layer):
        if type(layer) is keras.layers.Conv2D:  # separable and depthwise convolutions stay float
            return Int8Conv2D.from_conv(layer)
        if isinstance(layer, keras.Model):
            raise ValueError(f"{net.name}: nested model {layer.name!r}; int8_convolutions takes one flat network")
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(net, clone_function=clone)
    for layer in net.layers:
        new = copy.get_layer(layer.name)
        if not isinstance(new, Int8Conv2D):
            new.set_weights(layer.get_weights())
    return copy
