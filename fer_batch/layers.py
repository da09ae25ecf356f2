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
