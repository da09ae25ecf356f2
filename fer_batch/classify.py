"""Finding, loading and running the emotion classifier.

One resolver (:func:`resolve_model`) turns a packaged name or a path into a ``.keras`` file; :func:`load_model`
loads it in Keras safe mode and checks that it maps (N, 48, 48, 1) faces to 7 probabilities.

Runtimes: the ``.keras`` model runs either in Keras (TensorFlow; on a GPU when one is visible) or, on CPU-only
hosts, converted to TensorFlow Lite and run by its XNNPACK interpreter, which classifies the `fast` model's faces
about 1.7x faster on a 2-core AVX2 CPU (``benchmarks/classify_speed.py``). The two agree to ~1e-6, except for a
model whose card asks for int8 in TensorFlow Lite (:func:`tflite_quantization`), which then runs with int8 weights
and dynamically quantized int8 activations, with the accuracy and agreement its card gives (a third of the float
model's CPU per face on AMX Xeons, more than float on a Zen 1 EPYC: the packaged `fast` runs in float since
2026-12-04). Conversions (:mod:`fer_batch.tflite`) are cached per model file and
quantization (:mod:`fer_batch.tflite_cache`), so only a model's first run pays for one. A card may also ask for a
second look (``flip_margin``): the faces the model is unsure of are classified again, mirrored, and the two answers
averaged (:mod:`fer_batch.unsure_faces`).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from . import tflite_cache
from .dequantize import dequantized, is_quantized
from .config import RUNTIMES  # auto (keras with a GPU or for Keras-int8 layers, else tflite), keras, tflite
from .errors import ModelError, UsageError
from .labels import NUM_CLASSES
from .threads import classifier_threads
from .tflite import TFLiteRunner, convert, tflite_batch, tflite_key
from .unsure_faces import near_tie_rows, recheck_near_ties, second_look

if TYPE_CHECKING:  # numpy loads with the model, not with this module
    import numpy as np

log = logging.getLogger("fer_batch")

MODELS_DIR = Path(__file__).parent / "models"
#: Packaged model names; ``fast`` is the default everywhere.
PACKAGED = ("fast", "accurate")
DEFAULT_MODEL = "fast"


def available_models() -> list[str]:
    """Packaged model names whose files are present in this installation."""
    return [name for name in PACKAGED if (MODELS_DIR / f"{name}.keras").is_file()]


def resolve_model(name_or_path: str | Path | None = None, option: str = "--model") -> Path:
    """Path of the model file for a packaged name (``fast``, ``accurate``) or an explicit ``.keras`` path; ``option``
    names the argument in the error messages."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    text = str(name_or_path)
    if text in PACKAGED:
        path = MODELS_DIR / f"{text}.keras"
        if not path.is_file():
            raise ModelError(f"{option} {text!r}: this release does not ship the {text!r} model yet (see "
                             f"training/README.md); available: {', '.join(available_models()) or 'none'}")
        return path
    path = Path(text).expanduser()
    if path.suffix != ".keras" and not path.exists():
        raise ModelError(
            f"{option} {text!r} is neither a packaged model ({', '.join(PACKAGED)}) nor an existing .keras file"
        )
    if path.is_dir():
        hint = f"; did you mean {str(path / 'model.keras')!r}, the model of the run there?" \
            if (path / "model.keras").is_file() else f"; name a .keras file or a packaged model ({', '.join(PACKAGED)})"
        raise ModelError(f"{option} {text!r} is a folder{hint}")
    if not path.is_file():
        raise ModelError(f"{option} {text!r}: no such file")
    if path.suffix != ".keras":
        raise ModelError(f"{option} {text!r} is not a .keras file (Keras 3's format, which `fer-batch train` "
                         "writes); other formats are not read")
    return path


def check_keras_file(path: Path, option: str = "--model") -> None:
    """:class:`ModelError` unless ``path`` is laid out as a ``.keras`` file (a zip with ``config.json``): found in
    milliseconds, before the data is read and Keras is imported, where loading it would fail only after both."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{option} {str(path)!r}: not a .keras file ({exc})") from None
    if "config.json" not in names:
        raise ModelError(f"{option} {str(path)!r}: not a .keras file (a zip without config.json)")


def model_card(name_or_path: str | Path | None = None) -> dict:
    """The small JSON card shipped beside a packaged model (``<name>.json``): recipe, status, measured accuracy.

    Empty for a model file that has no card next to it.
    """
    import json

    path = resolve_model(name_or_path).with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{str(path)!r}, beside the model, is read as its card and is not valid JSON ({exc}); "
                         "rename it or the model") from None
    if not isinstance(card, dict):
        raise ModelError(f"{str(path)!r}, beside the model, is read as its card but holds a "
                         f"{type(card).__name__}, not an object; rename it or the model")
    if "class_name" in card and "config" in card:  # Keras's model.to_json(), saved beside the model: no card
        return {}
    return card


def load_keras_model(path: str | Path, option: str = "--model"):
    """Load a ``.keras`` file in safe mode (no arbitrary code from the file) and check its interface; ``option``
    names the argument in the error messages."""
    import keras

    from . import layers  # noqa: F401  registers the package's custom layers for deserialisation

    path = Path(path)
    if path.is_dir():  # Keras's own words for a folder are an UnboundLocalError
        resolve_model(path, option=option)  # "is a folder; did you mean RUN/model.keras ...?"
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, TypeError...
        raise ModelError(f"{option} {str(path)!r}: cannot load as a Keras model "
                         f"({type(exc).__name__}: {exc})") from None
    try:
        shape_in, shape_out = tuple(model.input_shape), tuple(model.output_shape)
    except (AttributeError, ValueError) as exc:  # e.g. a Sequential saved before it was ever built
        raise ModelError(f"{option} {str(path)!r}: has no defined input and output ({exc})") from None
    if shape_in[1:] != (48, 48, 1) or shape_out[1:] != (NUM_CLASSES,):
        raise ModelError(
            f"{option} {str(path)!r}: expected input (None, 48, 48, 1) and output (None, {NUM_CLASSES}), "
            f"got {shape_in} -> {shape_out}"
        )
    return model


class Classifier:
    """A loaded emotion model that turns uint8 (N, 48, 48, 1) crops into (N, 7) probabilities.

    ``runtime``: ``keras`` (TensorFlow places the model on a GPU when one is visible), ``tflite`` (converted on a
    model's first load, about 1-2 s, and cached; run by XNNPACK on the CPU; a model with Keras-quantized int8
    dense layers is converted as its float equivalent, :mod:`fer_batch.dequantize`), or ``auto`` (the default:
    ``keras`` where TensorFlow sees a GPU or the model has Keras-quantized layers, else ``tflite``, or ``keras``
    again for a model TFLite cannot convert).
    The chosen one is in ``self.runtime``. ``threads``: XNNPACK threads for ``tflite`` (default
    :func:`~fer_batch.threads.classifier_threads`: half the cores, leaving the rest to decoding and detection).

    The network always runs on batches of exactly ``network_batch`` faces (a short batch is padded), so a face's
    probabilities never depend on how many faces were grouped with it. That is ``batch_size`` in Keras, and
    :data:`~fer_batch.tflite.TFLITE_CHUNK` in TensorFlow Lite when it divides ``batch_size``. oneDNN may still round
    the last float32 bit differently by a face's *position* in a batch (seen at batch size 32, ~6e-8), so
    :meth:`predict` takes the position of the first crop (``offset``): the pipeline puts the i-th face of a run at
    position ``i % batch_size``, which makes a face's result a function of the face and its index in the run alone,
    and a resumed run bit-identical to an uninterrupted one.

    A card's ``flip_margin`` adds a second, mirrored look at the faces the model is unsure of
    (:func:`~fer_batch.unsure_faces.second_look`), kept just as independent of the batch: TensorFlow Lite runs the
    mirrored faces densely in batches of :data:`MIRROR_CHUNK` (XNNPACK gives a face the same bits in any position),
    Keras one mirrored face at a time (a batch of 1, the same bits whatever batch the face came in).

    One Classifier may be shared between threads: their :meth:`predict` calls take turns on its one network. A
    model whose outputs are not probabilities (no softmax at the end) is refused when loaded (one blank face is
    run through it), and at any batch where they are not.
    :meth:`close` (or a ``with`` block) lets its interpreters and model go at once rather than with the object.
    """

    def __init__(self, model: str | Path | None = None, batch_size: int = 256, runtime: str = "auto",
                 threads: int | None = None):
        from .config import MAX_BATCH, check_count

        # Checked here: a bad value reached the TFLite interpreter, whose failure read as a damaged cache entry
        # (deleted, and the model run in Keras instead).
        batch_size = check_count("batch_size (--batch-size)", batch_size, MAX_BATCH)
        if threads is not None:
            threads = check_count("threads", threads)
        if runtime not in RUNTIMES:
            raise UsageError(f"--runtime {runtime!r} is not allowed; choose one of {', '.join(RUNTIMES)}")
        self.batch_size = batch_size
        self.path = resolve_model(model)
        # Milliseconds, and the right words: an empty or truncated file read as "File not found" from Keras.
        check_keras_file(self.path)
        self.name = str(model) if model is not None and str(model) in PACKAGED else self.path.stem
        self._model = None
        # One interpreter (or Keras model) per Classifier: calls from several threads take turns on it.
        self._lock = threading.Lock()
        self._closed = False
        self._load_lock = threading.Lock()
        self._tflite = None
        self._near_ties = None  # float TFLite, one face at a time, for the faces int8 cannot tell apart
        self._mirror = None  # TFLite in short batches, for the second look at unsure faces
        #: Faces re-run in float because int8 found their two likeliest emotions too close
        #: (:func:`~fer_batch.unsure_faces.recheck_near_ties`): what the int8 runtime's speed depends on besides the
        #: network.
        self.faces_rechecked = 0
        #: The card's ``flip_margin`` (:func:`flip_margin`): faces this unsure are classified mirrored too.
        self.flip_margin = flip_margin(self.path)
        #: Faces classified a second time, mirrored, because the model was unsure of them
        #: (:func:`~fer_batch.unsure_faces.second_look`).
        self.faces_flipped = 0
        key = cached = None
        self.quantization = tflite_quantization(self.path) if runtime != "keras" else None
        if runtime != "keras":
            key = tflite_key(self.path, self.quantization)
            cached = tflite_cache.load(key)  # a cached conversion spares loading the model in Keras at all
            if cached is None and runtime == "tflite":
                # A Keras-quantized model's float copy is cached under a key of its own, which only an explicit
                # --runtime tflite reads, so that converting it once never moves `auto` off Keras.
                dequantized_key = tflite_key(self.path, self.quantization, dequantized=True)
                cached = tflite_cache.load(dequantized_key)
                if cached is not None:
                    key = dequantized_key
        chosen = runtime
        if runtime == "auto":
            # A Keras-quantized model (the packaged accurate) stays in Keras: its float copy converts (see
            # fer_batch.dequantize), but measured on a 2-core Xeon with AMX, Keras ran accurate at 338 faces/s
            # (5.4 ms of CPU a face) and TFLite at 138 on its one thread (7.2 ms). Only a convertible model has a
            # cache entry, so a cached one is not quantized.
            quantized = cached is None and is_quantized(self.model)
            chosen = "keras" if _gpu_visible() or quantized else "tflite"
        if chosen == "tflite":
            try:
                self._tflite = self._tflite_runner(key, cached, threads or classifier_threads())
                if self.flip_margin is not None:
                    self._mirror = self._tflite.with_batch(MIRROR_CHUNK)
                if self.quantization == "dynamic-int8":
                    self._near_ties = self._float_runner()
            except ModelError as exc:
                if runtime == "tflite":
                    raise
                # A user's model with layers TFLite cannot convert still runs, in Keras (and only there).
                log.info("%s; running it in Keras instead", exc)
                chosen = "keras"
                self._tflite = self._mirror = self._near_ties = None
        if chosen == "keras":
            self.model  # noqa: B018  loaded and checked now, not at the first batch
        self.runtime = chosen
        self.network_batch = self._tflite.batch_size if self._tflite is not None else batch_size
        self._probe()

    def _probe(self) -> None:
        """One blank face through the network now: a model without a softmax at its end was refused only at its
        first batch, after a run had made its output files (and on inputs without a face, never)."""
        import numpy as np

        if self._tflite is not None:
            probs = self._tflite(np.zeros((self.network_batch, 48, 48, 1), np.float32))
        else:  # called eagerly: predict_on_batch would trace a function for this one-face shape
            probs = np.asarray(self.model(np.zeros((1, 48, 48, 1), np.float32), training=False))
        self._check_probabilities(np.asarray(probs, dtype=np.float64))

    def _check_probabilities(self, probs) -> None:
        import numpy as np

        sums = probs.sum(axis=1)
        # 1e-2: a softmax computed in bfloat16 (a model saved under mixed_bfloat16) sums to 1 within about 0.003.
        if not (np.all(np.isfinite(probs)) and probs.min() >= -1e-4 and np.all(np.abs(sums - 1.0) <= 1e-2)):
            raise ModelError(f"--model {str(self.path)!r}: its outputs are not probabilities (a row sums to "
                             f"{sums[np.argmax(np.abs(sums - 1.0))]:.4g}, the smallest value is {probs.min():.4g}): "
                             "end the network with a softmax")

    @property
    def model(self):
        """The Keras model, loaded (and its interface checked) on first use: the TFLite runtime with a cached
        conversion never needs it."""
        with self._load_lock:
            if self._model is None:
                self._model = load_keras_model(self.path)
        return self._model

    def _tflite_runner(self, key: str, cached: bytes | None, threads: int) -> TFLiteRunner:
        if cached is not None:
            try:
                return TFLiteRunner(cached, tflite_batch(self.batch_size), self.path, threads, self.quantization)
            except ModelError as exc:
                log.info("tflite cache: the entry for %s does not load (%s); converting again", self.path, exc)
                tflite_cache.discard(key)
        model = self.model
        if is_quantized(model):
            # TFLite's converter cannot take Keras's int8 layers (the packaged accurate has them): it converts their
            # float equivalent (see fer_batch.dequantize).
            try:
                model = dequantized(model)
            except ModelError as exc:
                raise ModelError(f"--model {str(self.path)!r}: cannot run with --runtime tflite ({exc}); use "
                                 "--runtime keras") from None
            key = tflite_key(self.path, self.quantization, dequantized=True)
        data = convert(model, self.path, self.quantization)
        runner = TFLiteRunner(data, tflite_batch(self.batch_size), self.path, threads, self.quantization)
        tflite_cache.store(key, data)
        return runner

    def _float_runner(self) -> TFLiteRunner:
        """The float conversion of the model, one face a batch, on one thread: re-runs int8's near ties."""
        key, dequantized_key = tflite_key(self.path, None), tflite_key(self.path, None, dequantized=True)
        data = tflite_cache.load(key) or tflite_cache.load(dequantized_key)
        if data is None:
            model = self.model
            if is_quantized(model):  # a Keras-int8 file whose card asks for int8 TFLite: its float equivalent
                model, key = dequantized(model), dequantized_key
            data = convert(model, self.path, None)
            tflite_cache.store(key, data)
        return TFLiteRunner(data, 1, self.path, 1, None)

    def close(self) -> None:
        """Let the network go (TensorFlow Lite interpreters, the Keras model); :meth:`predict` then refuses."""
        with self._lock:
            self._closed = True
            self._tflite = self._mirror = self._near_ties = None
            self._model = None

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, batch):
        import numpy as np

        if self._closed:
            from .errors import UsageError

            raise UsageError(f"this Classifier ({self.name}) was closed; load the model again "
                             "(fer_batch.load_model) to classify more faces")
        if self._tflite is not None:
            return self._tflite(batch)
        return np.asarray(self.model.predict_on_batch(batch))

    def _mirror_runner(self):
        """``run(mirrored faces) -> probs`` for :func:`~fer_batch.unsure_faces.second_look`, keeping a face's result
        independent of the other faces of its batch."""
        import numpy as np

        if self._mirror is not None:
            # XNNPACK gives a face the same bits in any position of its batch (float and dynamic int8, tested), so
            # the mirrored faces go through densely, in batches of MIRROR_CHUNK: the second look costs about its
            # share of the faces.
            chunk = self._mirror.batch_size

            def run(faces):
                dense = np.zeros((-(-len(faces) // chunk) * chunk, 48, 48, 1), np.float32)
                dense[:len(faces)] = faces
                return np.concatenate([self._mirror(dense[i:i + chunk]) for i in range(0, len(dense), chunk)])[
                    :len(faces)]
            return run

        # oneDNN may round a face's last bit by its position in a batch, so a mirrored face among others could come
        # out differently with other faces beside it. Each goes through alone instead: always the same bits, and
        # about 4 ms a face on two cores against 400 ms to re-run a 256-face network batch for it.
        def run(faces):
            return np.concatenate([np.asarray(self.model.predict_on_batch(face[None])) for face in faces])
        return run

    def predict(self, crops, offset: int = 0) -> np.ndarray:
        """Probabilities (rows sum to 1) for a batch of crops; an empty batch gives shape (0, 7).

        ``offset`` is the position in the first batch of ``batch_size`` where the first crop goes; positions before
        it in its network batch are padding. With a card's ``flip_margin``, the unsure faces' rows are the mean of
        their own and their mirror image's probabilities (counted in :attr:`faces_flipped`; a near tie's float
        re-run takes its own second look, not counted).
        """
        import numpy as np

        crops = _as_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        n, size, start = len(crops), self.network_batch, offset % self.network_batch
        padded = np.zeros((-(-(start + n) // size) * size, 48, 48, 1), np.float32)
        padded[start:start + n] = crops
        with self._lock:
            probs = np.concatenate([self._run(padded[i:i + size]).astype(np.float64)
                                    for i in range(0, len(padded), size)])[start:start + n]
            if self.flip_margin is not None:
                rows = near_tie_rows(probs, self.flip_margin)
                self.faces_flipped += len(rows)
                probs = second_look(probs, padded[start:start + n], self._mirror_runner(), rows)
            if self._near_ties is not None:
                rows = near_tie_rows(probs)
                self.faces_rechecked += len(rows)
                one = self._near_ties
                if self.flip_margin is not None:  # the float model's answer includes its own second look
                    def one(face, run=self._near_ties, margin=self.flip_margin):
                        first = run(face).astype(np.float64)
                        return second_look(first, face, run, near_tie_rows(first, margin))
                probs = recheck_near_ties(probs, padded[start:start + n], one, rows)
        self._check_probabilities(probs)
        probs = np.clip(probs, 0.0, None)  # float rounding only, after the check above
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def flip_margin(path: Path) -> float | None:
    """The card's ``flip_margin``: a face whose two likeliest emotions lie within it is classified again, mirrored, and
    the two answers are averaged (:func:`~fer_batch.unsure_faces.second_look`). None (no second look) for a model
    without one.

    Only a card sets it (``training/ship_model.py --flip-margin``, which measures the model with it), so a user's
    own model runs as trained.
    """
    margin = model_card(path).get("flip_margin")
    problem = flip_margin_problem(margin)
    if problem:
        raise ModelError(f"the card of {str(path)!r} gives {problem}")
    return None if margin is None else float(margin)


def flip_margin_problem(margin) -> str | None:
    """What is wrong with a card's ``flip_margin`` value (None: no second look), or None where nothing is."""
    if margin is None or (not isinstance(margin, bool) and isinstance(margin, (int, float)) and 0 < margin <= 1):
        return None
    return f"flip_margin {margin!r}; expected a number in (0, 1] (or no flip_margin)"


def tflite_quantization(path: Path) -> str | None:
    """``"dynamic-int8"`` when the model's card asks TensorFlow Lite to run it with int8 weights, else None (float).

    Only a card can ask: ``training/ship_model.py --tflite-int8`` writes it after measuring the converted model's
    PublicTest accuracy and its agreement with the float model, so a user's own model always runs as trained.
    Dynamic quantization, not a calibrated int8 graph: each face's activations are quantized by their own range,
    so a face's result still does not depend on the other faces of its batch.
    """
    card = model_card(path)
    mode = card.get("tflite_quantization")
    if mode in (None, "dynamic-int8"):
        return mode
    raise ModelError(f"the card of {str(path)!r} asks for tflite_quantization {mode!r}; this release knows only "
                     "'dynamic-int8'")


def check_classifier(classifier, model: str | Path | None, runtime: str, where: str) -> None:
    """:class:`UsageError` where a loaded ``classifier`` runs another network than ``model`` names (None: not
    asked) or another runtime than an explicit ``runtime``: the options would be recorded (a run's journal and
    report) or believed while another network made the rows. A caller's own object without ``path`` is trusted, if
    it can ``predict``; a model's name given as the classifier, or a closed Classifier, is refused now rather than
    at the first batch (after a run's output files were made)."""
    if classifier is None:
        return
    if isinstance(classifier, (str, os.PathLike)) or not callable(getattr(classifier, "predict", None)):
        raise UsageError(f"{where}: classifier= takes a loaded classifier (fer_batch.load_model('fast')), got "
                         f"{type(classifier).__name__} {str(classifier)[:60]!r}; to choose the network by name, "
                         "give model=... instead")
    if getattr(classifier, "_closed", False):
        raise UsageError(f"{where}: the classifier given was closed; load another (fer_batch.load_model(...))")
    path = getattr(classifier, "path", None)
    if path is None:
        return
    if model is not None and Path(path).resolve() != resolve_model(model).resolve():
        raise UsageError(f"{where}: the classifier given runs {path}, but the model asked for is {model!r} "
                         f"({resolve_model(model)}); load the classifier from that model, or ask for its own")
    runs = getattr(classifier, "runtime", None)
    if runtime != "auto" and runs is not None and runs != runtime:
        raise UsageError(f"{where}: the classifier given runs in {runs}, but runtime {runtime!r} was asked for; "
                         f"load it with runtime={runtime!r}, or leave runtime out")


def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


#: Batch of the TFLite interpreter that gives unsure faces their second, mirrored look
#: (:func:`~fer_batch.unsure_faces.second_look`): a few faces of each batch, so a short batch keeps the padding small.
MIRROR_CHUNK = 4


def load_model(model: str | Path | None = None, **options) -> Classifier:
    """Load a packaged model by name (``fast``, ``accurate``) or a ``.keras`` file; ``None`` gives ``fast``.
    ``options`` are :class:`Classifier`'s (``batch_size``, ``runtime``, ``threads``); another name is a
    :class:`UsageError` naming the closest (``batchsize`` was Python's TypeError)."""
    from .config import check_option_names

    check_option_names(options, ("batch_size", "runtime", "threads"), takes="it takes", lead="load_model(): ")
    return Classifier(model, **options)


def _as_crops(crops):
    """``crops`` as an (N, 48, 48, 1) array of grayscale pixel values 0-255, or :class:`UsageError` saying what is
    wrong. One face may come as (48, 48) or (48, 48, 1), a batch as (N, 48, 48). Values scaled to 0-1 (or -1..1)
    are refused: the model scales 0-255 itself, and 0-1 faces gave confident wrong answers (a smile read angry)."""
    import numpy as np

    from .errors import UsageError

    if isinstance(crops, (str, os.PathLike)):
        raise UsageError(f"crops: expected face pixels, got the path {str(crops)!r}; read and cut the faces first "
                         "(fer_batch.analyze() takes files)")
    given = np.asarray(crops)
    shape = given.shape
    if given.size == 0 and given.ndim <= 1:  # predict([]): the empty batch the docstring promises
        arr = np.zeros((0, 48, 48, 1), np.float32)
    elif shape in ((48, 48), (48, 48, 1)):
        arr = given.reshape(1, 48, 48, 1)
    elif given.ndim == 3 and shape[1:] == (48, 48):
        arr = given[..., None]
    elif given.ndim == 4 and shape[1:] == (48, 48, 1):
        arr = given
    else:
        hint = "; convert colour faces to grayscale" if shape[-1:] in ((3,), (4,)) else ""
        raise UsageError(f"crops: expected grayscale 48x48 faces, shaped (N, 48, 48, 1), (N, 48, 48) or one "
                         f"(48, 48), got {shape}{hint} (fer_batch.crops.align_faces cuts them from a frame)")
    if arr.dtype == np.uint8 or arr.size == 0:
        return arr
    if arr.dtype.kind not in "iuf":
        raise UsageError(f"crops: expected pixel values (uint8 0-255), got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise UsageError("crops: contain NaN or infinite values")
    low, high = float(arr.min()), float(arr.max())
    if low < 0 or high > 255:
        raise UsageError(f"crops: pixel values must lie in 0-255, got {low:g} to {high:g} (faces normalised to "
                         "-1..1 or standardised? pass the uint8 pixels: the model scales them itself)")
    if arr.dtype.kind == "f":  # face by face: one 0-1 face in a batch of 0-255 ones is as wrong
        highest = arr.reshape(len(arr), -1).max(axis=1)
        scaled = np.flatnonzero((highest > 0) & (highest <= 1))
        if len(scaled):
            which = "" if len(arr) == 1 else f"face {scaled[0]} of {len(arr)}: "
            raise UsageError(f"crops: {which}pixel values look scaled to 0-1 (the largest is "
                             f"{highest[scaled[0]]:g}); pass 0-255 (multiply by 255, or the uint8 pixels): the model "
                             "scales them itself")
    return arr
