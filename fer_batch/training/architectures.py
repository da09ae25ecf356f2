"""Network architectures. Every model maps uint8 (N, 48, 48, 1) faces to 7 softmax probabilities.

Scaling lives inside the model (a ``Rescaling`` layer), so callers feed raw 0-255 crops exactly as in training.
Augmentation is *not* part of these models: :func:`build_augmenter` is applied in front of them while training, so
the shipped file holds only the network.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from ..errors import UsageError
from ..labels import NUM_CLASSES

INPUT_SHAPE = (48, 48, 1)


def _input_and_scale(name: str):
    inputs = keras.Input(shape=INPUT_SHAPE, name="face")
    # Map 0..255 to -1..1: the network sees zero-centred values whatever the caller's dtype.
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    return inputs, x


def seed(name: str = "seed") -> keras.Model:
    """The seed paper's network, as written: 4 x (Conv 3x3 ReLU -> MaxPool/2 -> BN), Dense 4096, Dropout 0.3."""
    inputs, x = _input_and_scale(name)
    for i, filters in enumerate((64, 128, 128, 512)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"pool{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(4096, activation="relu", name="fc")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv_bn_relu(x, filters: int, name: str, kernel: int = 3):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def vgg(
    widths: tuple[int, ...] = (64, 128, 256, 512),
    convs_per_stage: int = 2,
    fc: tuple[int, ...] = (1024, 1024),
    dropout: float = 0.4,
    name: str = "vgg",
) -> keras.Model:
    """VGG-style network for 48x48 faces (after Khaireddin & Chen 2021 and Pramerdorfer & Kampel 2016).

    Stages of ``convs_per_stage`` x (conv 3x3, BN, ReLU) and a 2x2 max-pool; then fully connected layers.
    """
    inputs, x = _input_and_scale(name)
    for s, filters in enumerate(widths):
        for c in range(convs_per_stage):
            x = _conv_bn_relu(x, filters, name=f"s{s + 1}c{c + 1}")
        x = layers.MaxPooling2D(2, name=f"s{s + 1}_pool")(x)
    x = layers.Flatten()(x)
    for i, units in enumerate(fc):
        x = layers.Dropout(dropout)(x)
        x = layers.Dense(units, use_bias=False, name=f"fc{i + 1}")(x)
        x = layers.BatchNormalization(name=f"fc{i + 1}_bn")(x)
        x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def _residual_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_c1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_c2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2", gamma_initializer="zeros")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_projbn")(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet(
    widths: tuple[int, ...] = (64, 128, 256, 512),
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    stem_stride: int = 1,
    dropout: float = 0.3,
    name: str = "resnet",
) -> keras.Model:
    """ResNet-style network: a 3x3 stem, residual stages (stride 2 from the second), global average pooling."""
    inputs, x = _input_and_scale(name)
    x = _conv_bn_relu(x, widths[0], "stem")
    if stem_stride == 2:
        x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for s, (filters, n) in enumerate(zip(widths, blocks)):
        for b in range(n):
            x = _residual_block(x, filters, 2 if (b == 0 and s > 0) else 1, name=f"s{s + 1}b{b + 1}")
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def _separable_block(x, filters: int, name: str):
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sep")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def compact(
    widths: tuple[int, ...] = (32, 64, 128, 256),
    convs_per_stage: int = 2,
    fc: int = 256,
    dropout: float = 0.3,
    name: str = "compact",
) -> keras.Model:
    """A small VGG-style student: full conv first in each stage, then depthwise-separable convs; GAP head."""
    inputs, x = _input_and_scale(name)
    for s, filters in enumerate(widths):
        x = _conv_bn_relu(x, filters, name=f"s{s + 1}c1")
        for c in range(1, convs_per_stage):
            x = _separable_block(x, filters, name=f"s{s + 1}c{c + 1}")
        x = layers.MaxPooling2D(2, name=f"s{s + 1}_pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(fc, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def tiny(name: str = "tiny") -> keras.Model:
    """A few-thousand-parameter net for tests and smoke runs (seconds an epoch on a CPU); not a real classifier.

    No batch normalisation: its moving statistics need more steps than a smoke run takes.
    """
    inputs, x = _input_and_scale(name)
    for s, filters in enumerate((8, 16)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"s{s + 1}c1")(x)
        x = layers.MaxPooling2D(2, name=f"s{s + 1}_pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


#: Named architectures ``fer-batch train --arch NAME`` accepts.
ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "seed": seed,
    "vgg": lambda: vgg(name="vgg"),
    # Three-fifths the width of "vgg": about 185 MMACs a face instead of 474, affordable to train on a CPU.
    "vgg-m": lambda: vgg(widths=(40, 80, 160, 320), fc=(1024, 1024), name="vgg_m"),
    # About 33 MMACs a face: one conv per stage. The interim `fast` network (see training/README.md).
    "vgg-tiny": lambda: vgg(widths=(32, 64, 128, 256), convs_per_stage=1, fc=(256,), dropout=0.3, name="vgg_tiny"),
    "vgg-small": lambda: vgg(widths=(32, 64, 128, 256), fc=(256,), dropout=0.3, name="vgg_small"),
    "resnet": lambda: resnet(name="resnet"),
    "resnet-s2": lambda: resnet(stem_stride=2, name="resnet_s2"),
    # Half width: a quarter of the parameters (2.8 M, about 11 MB), small enough to ship.
    "resnet-m": lambda: resnet(widths=(32, 64, 128, 256), name="resnet_m"),
    "compact": lambda: compact(name="compact"),
    # For tests and smoke runs only.
    "tiny": tiny,
}


def build_model(arch: str) -> keras.Model:
    """Build a fresh, uncompiled model by name; a wrong name lists the valid ones."""
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise UsageError(f"--arch {arch!r} is not an architecture; choose one of {', '.join(ARCHITECTURES)}") from None
    return factory()


def build_augmenter(strength: str = "standard", seed: int | None = None) -> keras.Sequential:
    """Training-time augmentation as Keras layers: flip, small rotation, zoom and shift, contrast.

    Applied in front of the network only while training; the shipped model never contains it.
    """
    if strength == "none":
        return keras.Sequential([layers.Identity()], name="augment")
    if strength == "standard":
        rotation, zoom, shift = 10 / 360, 0.1, 0.1
    elif strength == "strong":
        rotation, zoom, shift = 15 / 360, 0.15, 0.12
    else:
        raise UsageError(f"augmentation {strength!r} is not known; choose none, standard or strong")
    # One seed per layer: layers given the same seed draw the same uniforms, so flip, angle, zoom and shift
    # would move together.
    seeds = [None] * 5 if seed is None else [seed + i for i in range(5)]
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seeds[0]),
            layers.RandomRotation(rotation, fill_mode="reflect", seed=seeds[1]),
            layers.RandomZoom((-zoom, zoom), fill_mode="reflect", seed=seeds[2]),
            layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seeds[3]),
            layers.RandomContrast(0.2, seed=seeds[4]),
        ],
        name="augment",
    )
