"""Finding, loading and running the emotion classifier.

One resolver (:func:`resolve_model`) turns a packaged name or a path into a ``.keras`` file; :func:`load_model`
loads it in Keras safe mode and checks that it maps (N, 48, 48, 1) faces to 7 probabilities.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError
from .labels import NUM_CLASSES

MODELS_DIR = Path(__file__).parent / "models"
#: Packaged model names; ``fast`` is the default everywhere.
PACKAGED = ("fast", "accurate")
DEFAULT_MODEL = "fast"


def resolve_model(name_or_path: str | Path | None = None) -> Path:
    """Path of the model file for a packaged name (``fast``, ``accurate``) or an explicit ``.keras`` path."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    text = str(name_or_path)
    if text in PACKAGED:
        path = MODELS_DIR / f"{text}.keras"
        if not path.is_file():
            raise ModelError(f"--model {text!r}: the packaged file {path} is missing from this installation")
        return path
    path = Path(text).expanduser()
    if path.suffix != ".keras" and not path.exists():
        raise ModelError(
            f"--model {text!r} is neither a packaged model ({', '.join(PACKAGED)}) nor an existing .keras file"
        )
    if not path.is_file():
        raise ModelError(f"--model {text!r}: no such file")
    return path


def load_keras_model(path: str | Path):
    """Load a ``.keras`` file in safe mode (no arbitrary code from the file) and check its interface."""
    import keras

    from . import layers  # noqa: F401  registers the package's custom layers for deserialisation

    path = Path(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, TypeError...
        raise ModelError(f"--model {str(path)!r}: cannot load as a Keras model ({type(exc).__name__}: {exc})") from None
    shape_in, shape_out = tuple(model.input_shape), tuple(model.output_shape)
    if shape_in[1:] != (48, 48, 1) or shape_out[1:] != (NUM_CLASSES,):
        raise ModelError(
            f"--model {str(path)!r}: expected input (None, 48, 48, 1) and output (None, {NUM_CLASSES}), "
            f"got {shape_in} -> {shape_out}"
        )
    return model
