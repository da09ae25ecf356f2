"""Keeping TensorFlow's, MediaPipe's and TFLite's C++ log lines off the terminal, for callers that ask for it.

Their loggers (abseil, TFLite's own) write straight to file descriptor 2, bypassing Python, and most of them read
no environment variable: at TensorFlow's import the CUDA plugin registration errors and "computation placer"
warnings, and when a detector or interpreter starts MediaPipe's GPU/EGL notice, its "feedback manager" warning and
TFLite's "Created TensorFlow Lite XNNPACK delegate". The only reliable switch is to point fd 2 elsewhere while they
run. The CLI does this around model loading and detector start-up; the library never does it on its own.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

_lock = threading.Lock()


@contextmanager
def native_stderr(to: str | Path | None = None):
    """Send file descriptor 2 to ``to`` (appending) or to /dev/null for the duration; Python's own ``sys.stderr``
    is flushed first. Everything written to fd 2 meanwhile goes there, Python's stderr included."""
    with _lock:
        sys.stderr.flush()
        target = open(to if to else os.devnull, "ab")  # before dup: a path that cannot be opened leaks nothing
        saved = os.dup(2)
        try:
            os.dup2(target.fileno(), 2)
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            target.close()
