"""The models a run reads and writes besides its checkpoints: the ``--init`` weights it starts from, and the
``model.keras`` it ships (an inference copy of the network, wrapped for test-time augmentation)."""

from __future__ import annotations

from ..errors import UsageError


def load_initial_weights(net, path, given: str) -> None:
    """Copy a saved model's weights into ``net``, matched by name; a TTA-wrapped file gives those of the network
    inside it."""
    from ..classify import load_keras_model

    source = tta_inner(load_keras_model(path))
    theirs = float_weights(source)
    ours = {w.path: tuple(w.shape) for w in net.weights}
    if {k: v.shape for k, v in theirs.items()} != ours:
        raise UsageError(
            f"--init {given!r}: its network ({source.name}, {len(theirs)} weight tensors) does not match --arch "
            f"{net.name} ({len(ours)}); pass the --arch it was trained with"
        )
    net.set_weights([theirs[w.path] for w in net.weights])


def float_weights(model) -> dict:
    """``model``'s weights in float32 by path, with each int8 kernel (a model shipped after
    ``Model.quantize("int8")``, as ``accurate`` is) turned back into floats: Keras stores ``round(w * s)`` with one
    scale ``s`` per output unit, so ``int8 / s`` is the float kernel to within half a step. (A quantized layer also
    lists its weights in another order, so they are matched by name, not position.)"""
    import numpy as np

    scales = {w.path[: -len("_scale")]: np.asarray(w) for w in model.weights if w.path.endswith("kernel_scale")}
    out = {}
    for w in model.weights:
        if w.path.endswith("kernel_scale"):
            continue
        value = np.asarray(w)
        out[w.path] = value.astype("float32") / scales[w.path] if w.path in scales else value
    return out


def inference_copy(net):
    """A fresh, uncompiled copy of ``net`` with its weights. Saved as it is, a trained model also carries its
    optimizer's slots (as large again as the weights for SGD with momentum); ``keras.models.clone_model`` keeps
    them too, so the copy is rebuilt from the architecture's config."""
    copy = net.__class__.from_config(net.get_config())
    copy.set_weights(net.get_weights())
    return copy


def tta_inner(model):
    """The network inside a :func:`with_tta` wrapper (its one nested model), or ``model`` itself when unwrapped."""
    import keras

    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner[0] if len(inner) == 1 else model


def with_tta(net, tta: str):
    """Wrap a network so that it averages its predictions over the test-time views named by ``tta``
    (:mod:`~fer_batch.training.views`)."""
    from .views import with_views

    return with_views(net, tta)
