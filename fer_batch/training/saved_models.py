"""The models a run reads and writes besides its checkpoints: the ``--init`` weights it starts from, and the
``model.keras`` it ships (an inference copy of the network, wrapped for test-time augmentation)."""

from __future__ import annotations

from ..errors import UsageError


def load_initial_weights(net, path, given: str) -> None:
    """Copy a saved model's weights into ``net``; a TTA-wrapped file gives those of the network inside it, and a
    Keras-quantized one (the packaged ``accurate``'s members) its float equivalent (:mod:`fer_batch.dequantize`)."""
    net.set_weights(_fitting_weights(_shapes(net), net.name, path, given))


def initial_weights(arch: str, path, given: str) -> list:
    """The weights of the ``--init`` model at ``path`` for a network of ``arch``, read before any data is (and
    before an ``--overwrite`` deletes the run it replaces): :class:`UsageError` where they do not fit, naming the
    --arch that builds them, or saying that the file is an ensemble."""
    from .architectures import build_model

    return _fitting_weights(_shapes(build_model(arch)), arch, path, given)


def _shapes(net) -> list[tuple]:
    return [tuple(w.shape) for w in net.weights]


def _fitting_weights(ours: list[tuple], arch: str, path, given: str) -> list:
    import keras

    from ..classify import load_keras_model
    from ..dequantize import dequantized, is_quantized
    from .architectures import ARCHITECTURES, build_model

    source = tta_inner(load_keras_model(path, option="--init"))
    if is_quantized(source):
        source = dequantized(source)
    theirs = _shapes(source)
    if ours == theirs:
        return source.get_weights()
    members = [layer for layer in source.layers if isinstance(layer, keras.Model)]
    if len(members) > 1:
        hint = (f"it is an ensemble of {len(members)} networks, and --init starts one network: give a single "
                "network's .keras file (as `fer-batch train` writes it) or the packaged fast")
    else:
        fits = [name for name in ARCHITECTURES if _shapes(build_model(name)) == theirs]
        hint = (f"pass --arch {fits[0]}, which builds it" if fits else
                f"no --arch builds it (choose one of {', '.join(ARCHITECTURES)})")
    raise UsageError(f"--init {given!r}: its network ({source.name}, {len(theirs)} weight tensors) does not match "
                     f"--arch {arch} ({len(ours)}); {hint}")


def inference_copy(net):
    """A fresh, uncompiled copy of ``net`` with its weights. Saved as it is, a trained model also carries its
    optimizer's slots (as large again as the weights for SGD with momentum); ``keras.models.clone_model`` keeps
    them too, so the copy is rebuilt from the architecture's config. A network trained under ``--precision
    mixed_bfloat16`` (float32 weights, bf16 arithmetic) is copied as a float32 one."""
    from ..dequantize import float32_config

    copy = net.__class__.from_config(float32_config(net.get_config()))
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
