"""fer-batch: batch facial-emotion analysis of images and videos.

The public API is imported lazily so that ``import fer_batch`` (and ``fer-batch --help``) stays instant and free of
TensorFlow, MediaPipe and OpenCV imports.

One module a concern, in the order ``fer-batch analyze`` meets them:

================  ==============================================================================================
``cli``           the commands: arguments parsed into one validated config and one library call
``config``        validated options (:class:`~.config.AnalyzeConfig`, RunConfig); ``errors``: the exceptions
``batch``         a whole run: the pipeline into the timeline, errors, copies, summary, charts, report; ``--resume``
``engine_ray``    the same run as one Ray task a source (``--engine ray``)
``pipeline``      :func:`~.pipeline.analyze` and the events of a run, wiring the stages below together
``sources``       media files found and decoded into frames
``workers``       the worker threads: a reader decoding ahead and a detector, within bounded memory
``stages``        a source frame by frame: detect (``detect``, ``detect_auto``, ``verify``), ``track``, crop (``crops``)
``batcher``       crops grouped into fixed network batches, events released in order
``classify``      the model resolver and :class:`~.classify.Classifier` (``models/``: the shipped weights)
``tflite``        TensorFlow Lite conversion and interpreter (``tflite_cache``: conversions kept per model file)
``unsure_faces``  the second, mirrored look at unsure faces, and int8's near ties re-run in float
``dequantize``    float copies of Keras-int8 layers; ``layers``: custom layers; ``labels``: the seven emotions
``records``       the rows a run produces and the timeline's columns; ``sinks``: the CSV writers and journal
``timeline``      the timeline CSV read back, whole or one source at a time (what the outputs below stream)
``summary``       per-face summaries; ``charts``: timelines; ``annotate``, ``overlay``: annotated copies
``output_files``  which charts and copies a timeline's runs wrote, so that one starting it again removes the stale
``report``        the HTML report (``thumbs``: its face thumbnails)
``threads``       thread counts per native library (``native``: their C++ log lines kept off the terminal)
``user_cache``    the per-user cache folder; ``wording``: counted nouns ("1 frame", "2,000 frames") for every screen
``training/``     the library behind the train and evaluate commands, with a map of its own
================  ==============================================================================================
"""

from __future__ import annotations

from .labels import EMOTIONS

__version__ = "0.1.0"

#: The public API: name -> the module that defines it (imported on first use).
_PUBLIC = {
    "analyze": "pipeline",  # files and folders -> FaceRecord per face per analysed frame, streamed
    "analyze_source": "pipeline",  # one file, no threads
    "stream_source": "pipeline",  # the same, its events as they come
    "AnalyzeConfig": "config",
    "load_model": "classify",  # a packaged name or .keras file -> Classifier
    "Classifier": "classify",  # uint8 48x48 crops -> probabilities in EMOTIONS order
    "model_card": "classify",
    "RunConfig": "config",  # a whole run with its output files, as `fer-batch analyze` makes one
    "run_batch": "batch",
    "Progress": "batch",
    "FaceRecord": "records",
    "COLUMNS": "records",  # the timeline CSV's columns
    "read_timeline": "timeline",  # the timeline CSV -> DataFrame
    "Timeline": "timeline",  # the same, one source at a time (what summarize, charts and the report stream)
    "summarize": "summary",
    "FerBatchError": "errors",  # every error the library raises on purpose derives from it
    "UsageError": "errors",  # a bad argument or option value
    "InputError": "errors",  # a media file that cannot be read
    "ModelError": "errors",  # a model name or file that cannot be resolved or loaded
    "OutputError": "errors",  # an output that could not be written
}
__all__ = ["EMOTIONS", "__version__", *_PUBLIC]


def __getattr__(name: str):
    import importlib

    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    if name == "errors":  # fer_batch.errors.UsageError, as the README writes it, in a fresh interpreter
        return importlib.import_module(".errors", __name__)
    raise AttributeError(f"module 'fer_batch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
