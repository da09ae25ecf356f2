"""Test-time views built into a saved model: the network's predictions averaged over the face, its mirror image
and, for ``crops``, small shifts of both.

The published 71-73% FER-2013 networks average ten 40-44 px crops at test time (four corners and the centre, each
mirrored). Our networks take the whole 48 px face, so a crop is a shift of the face inside its reflected border
(``fer_batch.layers.Shift``), the same windows that ``--augment crop-erase`` trains on: ``crops`` is the centre and
four shifts of ``CROP_SHIFT`` pixels (up, down, left, right), each mirrored: ten views, ten times the cost of one.
"""

from __future__ import annotations

from ..errors import UsageError

VIEWS = ("none", "flip", "crops")
CROP_SHIFT = 2
CROP_OFFSETS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


def view_layers(views: str) -> list[list]:
    """The layers making each view, as a list per view (an empty list is the face itself)."""
    from ..layers import FlipLeftRight, Shift

    if views == "none":
        return [[]]
    if views == "flip":
        offsets = ((0, 0),)
    elif views == "crops":
        offsets = CROP_OFFSETS
    else:
        raise UsageError(f"--tta {views!r} is not allowed; choose one of {', '.join(VIEWS)}")
    out = []
    for dy, dx in offsets:
        shift = [Shift(dy * CROP_SHIFT, dx * CROP_SHIFT, name=f"shift_{dy}_{dx}")] if (dy, dx) != (0, 0) else []
        out.append(shift)
        out.append(shift + [FlipLeftRight(name=f"hflip_{dy}_{dx}" if shift else "hflip")])
    return out


def with_views(net, views: str):
    """``net`` wrapped to average its softmax over ``views``; ``net`` itself for ``none``."""
    import keras
    from keras import layers

    chain = view_layers(views)
    if views == "none":
        return net
    inputs = keras.Input(shape=net.input_shape[1:], name="face")
    outputs = []
    for steps in chain:
        x = inputs
        for layer in steps:
            x = layer(x)
        outputs.append(net(x))
    suffix = "flip_tta" if views == "flip" else "crops_tta"
    return keras.Model(inputs, layers.Average(name="tta_mean")(outputs), name=f"{net.name}_{suffix}")
