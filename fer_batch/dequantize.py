"""A float copy of a Keras model whose dense layers were quantized to int8 (``Model.quantize("int8")``).

``accurate`` ships that way: int8 dense kernels halve a VGG whose weights are mostly in its dense head, and keep the
file under the 25 MB a packaged model may take. TensorFlow Lite's converter cannot take Keras's int8 layers, so
such a model used to run in Keras alone. Keras stores each kernel as ``round(w * s)`` with one scale ``s`` per
output unit, so ``int8 / s`` gives back the float kernel to within half a quantization step; the float copy
converts and runs in TFLite (XNNPACK) like any other model. It differs from the Keras int8 model only in that
Keras also quantizes each face's activations at those layers: the two are measured side by side on PublicTest
in ``training/README.md``.
"""

from __future__ import annotations

from .errors import ModelError


def is_quantized(model) -> bool:
    """Whether Keras quantized some layers of ``model`` (``model.quantize``), or it has int8 convolutions
    (:class:`fer_batch.layers.Int8Conv2D`)."""
    from .layers import Int8Conv2D

    return any(getattr(layer, "quantization_mode", None) or isinstance(layer, Int8Conv2D)
               for layer in model._flatten_layers())


def dequantized(model):
    """A float32 copy of ``model`` (nested models included) with its int8 dense kernels, and its int8 convolutions
    (as plain ``Conv2D``), turned back into floats; :class:`ModelError` for any other kind of quantized layer."""
    import keras

    config = float32_config(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config)
    _copy_weights(model, copy)
    return copy


def float32_config(node):
    """A model config (or serialized model) with every quantized or mixed-precision dtype policy replaced by
    float32: what a float copy for TFLite, or the saved copy of a network trained under ``--precision
    mixed_bfloat16``, is rebuilt from."""
    import keras

    from .layers import Int8Conv2D

    return _float32_config(node, keras.saving.get_registered_name(Int8Conv2D))


def _float32_config(node, int8_conv: str):
    if isinstance(node, dict):
        if node.get("registered_name") == int8_conv:
            config = {k: v for k, v in node["config"].items() if k != "dtype"}
            # The node's other keys (a functional model's "name", "inbound_nodes", "build_config") stay.
            return {**_float32_config({k: v for k, v in node.items() if k not in ("config", "registered_name")},
                                      int8_conv),
                    "module": "keras.layers", "class_name": "Conv2D", "registered_name": None,
                    "config": {**config, "dtype": "float32", "data_format": "channels_last", "groups": 1}}
        if node.get("class_name") == "QuantizedDTypePolicy" or (
                node.get("class_name") == "DTypePolicy"
                and str(node.get("config", {}).get("name", "")).startswith("mixed_")):
            return "float32"
        return {k: _float32_config(v, int8_conv) for k, v in node.items()}
    if isinstance(node, list):
        return [_float32_config(v, int8_conv) for v in node]
    return node


def _copy_weights(source, target) -> None:
    import keras
    import numpy as np

    from .layers import Int8Conv2D

    sources, targets = _leaves(source), _leaves(target)
    if [s.name for s in sources] != [t.name for t in targets]:
        raise ModelError(f"{source.name}: its float copy has other layers; cannot dequantize it")
    for s, t in zip(sources, targets):
        mode = getattr(s, "quantization_mode", None)
        if isinstance(s, Int8Conv2D):
            t.kernel.assign(s.float_kernel())
            if s.use_bias:
                t.bias.assign(np.asarray(s.bias))
        elif mode is None:
            t.set_weights(s.get_weights())
        elif mode == "int8" and isinstance(s, keras.layers.Dense):
            kernel = np.asarray(s._kernel).astype("float32") / np.asarray(s.kernel_scale)
            t.kernel.assign(kernel)
            if s.use_bias:
                t.bias.assign(np.asarray(s.bias))
        else:
            raise ModelError(f"layer {s.name!r} is quantized as {mode!r} ({type(s).__name__}); only int8 Dense "
                             "layers can be turned back into floats")


def _leaves(model) -> list:
    """The layers holding weights, nested models opened, in the order Keras builds them."""
    out = []
    for layer in model.layers if hasattr(model, "layers") else []:
        if hasattr(layer, "layers"):
            out.extend(_leaves(layer))
        elif layer.weights:
            out.append(layer)
    return out

