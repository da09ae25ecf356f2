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

# Reentrant: native_stderr flushes sys.stderr while holding it, and under stderr_beside_native that flush takes it too.
_lock = threading.RLock()


class _BesideNative:
    """``sys.stderr`` whose writes wait while another thread has fd 2 pointed elsewhere (:func:`native_stderr`)."""

    def __init__(self, inner):
        self._inner = inner

    def write(self, text):
        with _lock:
            return self._inner.write(text)

    def flush(self):
        with _lock:
            return self._inner.flush()

    def close(self):
        # Not ours to close: absl's log handler, created while this stands in for sys.stderr, closes its stream at
        # exit when that is no longer sys.stderr, which would close the real one.
        self.flush()

    def __getattr__(self, name):
        return getattr(self._inner, name)


@contextmanager
def stderr_beside_native():
    """For the duration, Python's writes to ``sys.stderr`` from one thread wait while another thread's native
    start-up has fd 2 pointed elsewhere, instead of going there with the native lines: with ``--workers`` a
    detector starts in a worker thread while the main thread prints progress and error lines."""
    inner = sys.stderr
    sys.stderr = _BesideNative(inner)
    try:
        yield
    finally:
        sys.stderr = inner


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
