"""TensorFlow Lite: converting a Keras model (float, or with dynamic int8 weights) and running it with XNNPACK.

The conversions are cached by :mod:`fer_batch.tflite_cache` under :func:`tflite_key`; which model runs where is
decided by :class:`fer_batch.classify.Classifier`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import tflite_cache
from .errors import ModelError
from .labels import NUM_CLASSES


def tflite_key(path: Path, quantization: str | None = None, *, dequantized: bool = False) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        tf_version = version("tensorflow")  # read from the installed metadata: importing TensorFlow takes seconds
    except PackageNotFoundError:
        tf_version = "unknown"
    # The same file converts to other bytes with int8 weights: the mode is part of the key; so is converting a
    # Keras-quantized model's float copy, which only an explicit --runtime tflite may use.
    variant = tf_version if quantization is None else f"{tf_version}-{quantization}"
    return tflite_cache.cache_key(path, f"{variant}-dequantized" if dequantized else variant)


def convert(keras_model, path: Path, quantization: str | None = None) -> bytes:
    """The TFLite flatbuffer of a Keras model (int8 weights for ``"dynamic-int8"``); :class:`ModelError` where the
    converter refuses it."""
    import contextlib
    import io

    if quantization not in (None, "dynamic-int8"):
        raise ModelError(f"--model {str(path)!r}: TFLite quantization {quantization!r} is not one this release "
                         "knows; the only one is 'dynamic-int8'")
    import tensorflow as tf

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        if quantization == "dynamic-int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights; no calibration data needed
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the model's signature
            return converter.convert()
    except Exception as exc:  # the converter raises a variety of types
        raise ModelError(f"--model {str(path)!r}: cannot run with --runtime tflite ({type(exc).__name__}: "
                         f"{exc}); use --runtime keras") from None
    finally:
        # The converter adds a stderr handler to the root logger; a library must leave logging as it found it.
        root.handlers[:] = handlers
        root.setLevel(level)


#: Faces per network batch in TensorFlow Lite (when it divides ``--batch-size``). Small batches keep a batch's
#: activations in the core's cache: on machine C (Intel Xeon, AVX-512 + AMX, 4 MB L2 a core) the packaged int8
#: ``fast`` classified PublicTest's faces at 2,989-3,087 faces/s in batches of 4 against 2,421-2,630 in batches of
#: 32 (and 2,888-2,958 in 2s, 2,754-2,886 in 1s; three alternating runs, one thread), with bit-identical
#: probabilities: XNNPACK gives each face the same bits in any position of a batch of any size. A short batch -- the
#: last faces of a run, or the flush after many frames without faces -- is padded to 4 faces. (On a 2-core AMD EPYC
#: with AVX2, batches of 32 and 256 had cost the same, 0.88 and 0.90 ms a face.)
TFLITE_CHUNK = 4


def tflite_batch(batch_size: int) -> int:
    """The network batch TensorFlow Lite runs for a ``--batch-size``: :data:`TFLITE_CHUNK` when it divides it, so
    that a face's position in its network batch still follows from its position in the run's batches."""
    return TFLITE_CHUNK if batch_size % TFLITE_CHUNK == 0 else batch_size


class TFLiteRunner:
    """A TFLite model (a converted Keras model's bytes) run by the XNNPACK CPU interpreter at a fixed batch shape."""

    def __init__(self, data: bytes, batch_size: int, path: Path, threads: int, quantization: str | None = None):
        import tensorflow as tf

        from .threads import warnings_ignored

        try:
            with warnings_ignored():
                # "tf.lite.Interpreter is deprecated": TF 2.20 moves it to LiteRT; TensorFlow is pinned to 2.19.
                self.interpreter = tf.lite.Interpreter(model_content=data, num_threads=threads)
            self.threads, self.quantization = threads, quantization
            inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
            if tuple(inp["shape"][1:]) != (48, 48, 1) or tuple(out["shape"][1:]) != (NUM_CLASSES,):
                raise ValueError(f"expected input (N, 48, 48, 1) and output (N, {NUM_CLASSES}), got "
                                 f"{tuple(inp['shape'])} -> {tuple(out['shape'])}")
            self.input, self.output = inp["index"], out["index"]
            # A model may take its crops as uint8 (or any numeric type), as Keras lets a user declare its Input: fed
            # float32, the interpreter refused them ("Got value of type FLOAT32 but expected type UINT8").
            self.input_dtype = inp["dtype"]
            self.batch_size, self.data, self.path = batch_size, data, path
            self.interpreter.resize_tensor_input(self.input, [batch_size, 48, 48, 1])
            self.interpreter.allocate_tensors()
        except Exception as exc:  # the interpreter raises a variety of types
            raise ModelError(f"--model {str(path)!r}: cannot run with --runtime tflite ({type(exc).__name__}: "
                             f"{exc}); use --runtime keras") from None

    def with_batch(self, batch_size: int) -> TFLiteRunner:
        """Another interpreter of the same model and settings, at another fixed batch size."""
        return TFLiteRunner(self.data, batch_size, self.path, self.threads, self.quantization)

    def __call__(self, batch):
        import numpy as np

        self.interpreter.set_tensor(self.input, np.ascontiguousarray(batch, dtype=self.input_dtype))
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output))
