"""Keeping TensorFlow's and MediaPipe's C++ start-up logging off the user's terminal (CLI only, never the library).

Their native loggers write straight to file descriptor 2 (cuda registration notices, XNNPACK and "feedback manager"
lines), bypassing Python, so the only reliable switch is to point fd 2 elsewhere while they initialise.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

_lock = threading.Lock()


@contextmanager
def native_stderr(to: Path | None):
    """Send fd 2 to ``to`` (appending) or to /dev/null for the duration; Python's own stderr is flushed first."""
    with _lock:
        sys.stderr.flush()
        saved = os.dup(2)
        target = open(to if to else os.devnull, "ab")
        try:
            os.dup2(target.fileno(), 2)
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            target.close()


def quiet_detector_factory(debug_log: Path | None):
    """A detector factory for the pipeline whose MediaPipe graph start-up output goes to ``debug_log``."""
    def make(config):
        from ..detect import FaceDetector

        with native_stderr(debug_log):
            return FaceDetector(config.detector, min_score=config.min_score, max_side=config.detect_max_side)

    return make
