"""Learning from a teacher as well as the labels, and the compiled trainer that does it.

Online (:func:`distiller`): the frozen teacher sees each augmented batch beside its student. Cached
(:func:`cached_teacher` + :func:`cached_distillation`): the teacher's probabilities for the un-augmented faces are
computed once, kept beside the checkpoint, and travel with the labels. Both blend ``weight`` x KL(teacher ||
student) at ``temperature`` with the rest x the labels' smoothed cross-entropy. Without a teacher the trainer is the
network itself (:func:`compile_trainer`).
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..labels import NUM_CLASSES


def compile_trainer(net, config, optimizer, teacher_path):
    """The model ``fit`` trains, compiled: ``net`` itself, or ``net`` inside an online distiller."""
    import keras

    if config.teacher and config.teacher_mode in ("cached", "views"):
        loss, accuracy = cached_distillation(config.temperature, config.distill_weight, config.label_smoothing)
        net.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])
        return net
    if config.teacher and config.teacher_mode != "online":
        from .train_config import TEACHER_MODES

        raise UsageError(f"--teacher-mode {config.teacher_mode!r} is not allowed; choose one of "
                         f"{', '.join(TEACHER_MODES)}")
    if config.teacher:
        from ..classify import load_keras_model

        teacher = load_keras_model(teacher_path, option="--teacher")
        trainer = distiller(net, teacher, config.temperature, config.distill_weight, config.label_smoothing)
        trainer.compile(optimizer=optimizer, metrics=["accuracy"])
        # BackupAndRestore needs a built model; a subclassed one is built by calling it once.
        trainer(np.zeros((1, *net.input_shape[1:]), "float32"))
        return trainer
    net.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    return net


def kd_loss(teacher_probs, student_probs, temperature: float):
    """KL(teacher || student) between the probabilities softened at ``temperature``, times T^2 (Hinton et al.).

    KL rather than cross-entropy: the same gradient without the teacher's entropy, so the loss reads 0 when the
    student matches its teacher.
    """
    from keras import ops

    log_t = ops.log_softmax(ops.log(ops.clip(teacher_probs, 1e-7, 1.0)) / temperature)
    log_s = ops.log_softmax(ops.log(ops.clip(student_probs, 1e-7, 1.0)) / temperature)
    return ops.mean(ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1)) * temperature**2


def distiller(student, teacher, temperature: float, weight: float, label_smoothing: float):
    import keras
    from keras import ops

    class Distiller(keras.Model):
        """Student trained on a blend of the labels and a frozen teacher's softened probabilities."""

        def __init__(self):
            super().__init__(name="distiller")
            self.student = student
            self.teacher = teacher
            self.teacher.trainable = False
            self.hard = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)

        def call(self, x, training=False):
            return self.student(x, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            t = ops.stop_gradient(self.teacher(x, training=False))
            return weight * kd_loss(t, y_pred, temperature) + (1 - weight) * self.hard(y, y_pred)

    return Distiller()


def cached_distillation(temperature: float, weight: float, label_smoothing: float):
    """Loss and accuracy for targets that carry [one-hot labels | cached teacher probabilities] side by side.

    The same blend as the online distiller: ``weight`` x KL(teacher || student) at ``temperature`` (times T^2) plus
    the rest x the labels' smoothed cross-entropy.
    """
    import keras

    hard = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)

    def distillation_loss(y_true, y_pred):
        labels, teacher = y_true[:, :NUM_CLASSES], y_true[:, NUM_CLASSES:]
        return weight * kd_loss(teacher, y_pred, temperature) + (1 - weight) * hard(labels, y_pred)

    def label_accuracy(y_true, y_pred):
        return keras.metrics.categorical_accuracy(y_true[:, :NUM_CLASSES], y_pred)

    return distillation_loss, keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")


def cached_teacher(path, splits: dict[str, np.ndarray], cache: Path, reuse: bool) -> dict[str, np.ndarray]:
    """The teacher's probabilities for each split's faces, kept in ``cache`` so that a resumed run trains on the very
    targets it started with (a CPU's TFLite and a GPU's Keras differ in the last bits)."""
    if reuse and cache.is_file():
        try:
            with np.load(cache) as saved:
                if all(k in saved and len(saved[k]) == len(x) for k, x in splits.items()):
                    return {k: saved[k] for k in splits}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # unreadable (a file from before writes were atomic, cut short): computed again below
    predict = teacher_predictor(path)
    probs = {}
    for split, x in splits.items():
        print(f"caching the teacher's probabilities for {len(x)} {split} faces ...", file=sys.stderr)
        probs[split] = predict(x)
    tmp = cache.with_name(cache.name + ".part.npz")  # written whole or not at all: a stop mid-write tears nothing
    np.savez(tmp, **probs)
    tmp.replace(cache)
    return probs


def teacher_predictor(path):
    """``predict(uint8 faces) -> probabilities`` with the teacher loaded once: through the product's classifier
    (TFLite on a CPU) where TensorFlow is the backend, else in Keras."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from ..classify import Classifier
        from ..threads import usable_cores

        # Every core: nothing else runs while the teacher labels the training faces (analyze's default of half the
        # cores leaves room for decoding). Measured on 2 cores (f1 + fast as the teacher): 112 faces/s on one
        # XNNPACK thread, 212 on two, 196 in Keras.
        return Classifier(path, threads=usable_cores()).predict
    from ..classify import load_keras_model
    from .evaluate import predict_probs

    model = load_keras_model(path, option="--teacher")
    return lambda x: predict_probs(model, x)
