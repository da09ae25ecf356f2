"""The per-user cache folder that TFLite conversions and training checkpoints default to."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fer-batch``, or ``~/.cache/fer-batch`` when that is unset, empty or relative (the XDG spec
    says to ignore a relative value: it would put the cache wherever the command happens to run)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "fer-batch"
