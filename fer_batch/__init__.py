"""fer-batch: batch facial-emotion analysis of images and videos.

The public API is imported lazily so that ``import fer_batch`` (and ``fer-batch --help``) stays instant and free of
TensorFlow, MediaPipe and OpenCV imports.
"""

from __future__ import annotations

from .labels import EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "analyze", "load_model", "AnalyzeConfig", "__version__"]


def __getattr__(name: str):
    if name == "analyze":
        from .pipeline import analyze

        return analyze
    if name == "AnalyzeConfig":
        from .config import AnalyzeConfig

        return AnalyzeConfig
    if name == "load_model":
        from .classify import load_model

        return load_model
    raise AttributeError(f"module 'fer_batch' has no attribute {name!r}")
