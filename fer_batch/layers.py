"""Custom Keras layers used inside shipped models, registered so ``.keras`` files load in safe mode."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="fer_batch")
class FlipLeftRight(keras.layers.Layer):
    """Mirror NHWC images left-right (the second view of flip test-time augmentation)."""

    def call(self, x):
        return keras.ops.flip(x, axis=2)
