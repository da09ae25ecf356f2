"""Custom Keras layers used inside shipped models, registered so ``.keras`` files load in safe mode."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="fer_batch")
class FlipLeftRight(keras.layers.Layer):
    """Mirror NHWC images left-right (the second view of flip test-time augmentation)."""

    def call(self, x):
        return keras.ops.flip(x, axis=2)


@keras.saving.register_keras_serializable(package="fer_batch")
class Shift(keras.layers.Layer):
    """Move NHWC images by (``dy``, ``dx``) pixels, filling the uncovered border by reflection: the 48 px window of
    the face padded by ``max(|dy|, |dx|)`` that a random crop in training could have cut (a test-time view)."""

    def __init__(self, dy: int = 0, dx: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.dy, self.dx = int(dy), int(dx)

    def call(self, x):
        pad = max(abs(self.dy), abs(self.dx))
        if pad == 0:
            return x
        h, w = x.shape[1], x.shape[2]
        padded = keras.ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")
        # Content moves by (dy, dx): the output's pixel (i, j) is the input's (i - dy, j - dx).
        top, left = pad - self.dy, pad - self.dx
        return padded[:, top:top + h, left:left + w, :]

    def get_config(self):
        return {**super().get_config(), "dy": self.dy, "dx": self.dx}


@keras.saving.register_keras_serializable(package="fer_batch")
class Int8Conv2D(keras.layers.Layer):
    """A 2-D convolution (NHWC) whose kernel is stored as int8, with one scale per output channel: a quarter of a
    float32 kernel's bytes. Keras quantizes Dense layers (``Model.quantize``) but not convolutions, and a wide
    VGG's convolutions alone (4.7 M weights, 18.7 MB) would fill a shipped file's 25 MB. The kernel is restored to
    float (``int8 / scale``) and the convolution runs in float, so only the weights' rounding differs from the
    float layer (see :meth:`from_conv`).
    """

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid", dilation_rate=(1, 1),
                 use_bias: bool = True, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding={padding!r} is not allowed; choose 'valid' or 'same'")
        self.dilation_rate = _pair(dilation_rate)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        shape = (*self.kernel_size, int(input_shape[-1]), self.filters)
        self.kernel_int8 = self.add_weight(name="kernel_int8", shape=shape, dtype="int8", initializer="zeros",
                                           trainable=False)
        self.kernel_scale = self.add_weight(name="kernel_scale", shape=(self.filters,), initializer="ones",
                                            trainable=False)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros",
                                    trainable=False) if self.use_bias else None

    def call(self, x):
        ops = keras.ops
        kernel = ops.divide(ops.cast(self.kernel_int8, x.dtype), ops.cast(self.kernel_scale, x.dtype))
        y = ops.conv(x, kernel, strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate)
        if self.bias is not None:
            y = ops.add(y, ops.cast(self.bias, y.dtype))
        return self.activation(y)

    def float_kernel(self):
        """The kernel as the layer computes with it (``int8 / scale``), as a float32 numpy array."""
        import numpy as np

        return np.asarray(self.kernel_int8).astype(np.float32) / np.asarray(self.kernel_scale)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "dilation_rate": self.dilation_rate,
                "use_bias": self.use_bias, "activation": keras.activations.serialize(self.activation)}

    @classmethod
    def from_conv(cls, conv) -> "Int8Conv2D":
        """An int8 copy of a built ``keras.layers.Conv2D`` (channels-last, one group): each output channel's kernel
        is scaled so that its largest magnitude becomes 127 and rounded to the nearest integer, so every weight is
        restored to within half a step (its channel's largest weight / 254)."""
        import numpy as np

        if conv.data_format != "channels_last" or conv.groups != 1:
            raise ValueError(f"{conv.name}: only channels-last convolutions without groups can be stored as int8")
        layer = cls(conv.filters, conv.kernel_size, strides=conv.strides, padding=conv.padding,
                    dilation_rate=conv.dilation_rate, use_bias=conv.use_bias,
                    activation=keras.activations.serialize(conv.activation), name=conv.name)
        kernel = np.asarray(conv.kernel, np.float32)
        layer.build((None, None, None, kernel.shape[2]))
        q, scale = quantize_per_channel(kernel)
        layer.kernel_int8.assign(q)
        layer.kernel_scale.assign(scale)
        if conv.use_bias:
            layer.bias.assign(np.asarray(conv.bias, np.float32))
        return layer


def quantize_per_channel(kernel):
    """``(int8 kernel, float32 scales)`` with ``kernel ~= int8 / scale`` per output channel (the last axis);
    a channel of zeros gets scale 1."""
    import numpy as np

    amax = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
    scale = np.where(amax > 0, 127.0 / np.where(amax > 0, amax, 1.0), 1.0).astype(np.float32)
    return np.clip(np.rint(kernel * scale), -127, 127).astype(np.int8), scale


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)
