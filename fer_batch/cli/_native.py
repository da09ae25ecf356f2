"""Keeping TensorFlow's and MediaPipe's C++ start-up logging off the user's terminal (CLI only, never the library).

Their native loggers write straight to file descriptor 2 (cuda registration notices, XNNPACK and "feedback manager"
lines), bypassing Python, so the only reliable switch is to point fd 2 elsewhere while they initialise
(:func:`fer_batch.native.native_stderr`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..native import native_stderr


def quiet_native_logs() -> None:
    """Turn down TensorFlow's, MediaPipe's and FFmpeg's native logging, only where the user has not chosen a level.

    CLI only: the library never touches the environment.
    """
    # 3 also hides TensorFlow's C++ errors; the ones that matter (out of memory, a failed kernel) reach Python as
    # exceptions, while at 2 a CPU-only host prints a "failed call to cuInit" error on every run.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    # FFmpeg (inside OpenCV) writes decoder complaints about odd videos straight to fd 2 ("[swscaler @ 0x...]
    # Slice parameters 0, 96 are invalid", one per frame); failures are reported per file in OUT.errors.csv.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def import_keras_quietly(log: Path | None = None) -> None:
    """Import Keras (and so TensorFlow) with its native start-up lines (CUDA plugin registration) sent to ``log``."""
    with native_stderr(log):
        import keras  # noqa: F401


def quiet_photo_detector_factory(log: Path | None = None):
    """A ``model -> FaceDetector`` factory for :class:`~fer_batch.training.photo_faces.PhotoFaceCropper` whose
    MediaPipe start-up output goes to ``log``."""
    def make(model: str):
        from ..detect import FaceDetector

        with native_stderr(log):
            return FaceDetector(model)

    return make


def quiet_detector_factory(debug_log: Path | None):
    """A detector factory for the pipeline whose MediaPipe graph start-up output goes to ``debug_log``."""
    def make(config):
        from ..stages import default_detector_factory

        with native_stderr(debug_log):
            return default_detector_factory(config)

    return make
