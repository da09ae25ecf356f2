"""A per-user cache of TensorFlow Lite conversions, so that a model is converted once, not on every run.

Converting the `fast` model takes 1-2 s on an idle 2-core CPU (10 s under load) and needs Keras to load the model
first; a cached conversion is read in milliseconds. Entries live in ``$XDG_CACHE_HOME/fer-batch/tflite`` (by
default ``~/.cache/fer-batch/tflite``) and may be deleted at any time: a missing entry is converted again.

An entry is keyed by the SHA-256 of the model file's bytes and the TensorFlow version that converted it, so an
edited or retrained model (even under the same name) gets a new entry. Its own file name ends in the SHA-256 of
its content: a truncated or altered entry does not match, and is deleted and rebuilt rather than trusted. Entries
are written to a temporary file and renamed into place, so concurrent runs never read half an entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("fer_batch")

#: Bump when the conversion itself changes (options, preprocessing), so old entries are not reused.
FORMAT = 1


def cache_dir() -> Path:
    """Where entries live: ``$XDG_CACHE_HOME/fer-batch/tflite``, or ``~/.cache/fer-batch/tflite``."""
    from .user_cache import user_cache_dir

    return user_cache_dir() / "tflite"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read a megabyte at a time: how a model file is known by its content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(model_path: Path, tf_version: str) -> str:
    """The key of ``model_path``'s conversion by TensorFlow ``tf_version``: its content, not its name or date."""
    return f"{file_sha256(model_path)}-tf{tf_version}-v{FORMAT}"


def load(key: str) -> bytes | None:
    """The cached conversion for ``key``, or ``None``. Entries whose content does not match their name are
    deleted (a disk or a process failed while writing one): the caller converts again."""
    directory = cache_dir()
    try:
        candidates = sorted(directory.glob(f"{key}-*.tflite"))
    except OSError:
        return None
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.debug("tflite cache: cannot read %s (%s)", path, exc)
            continue
        if _sha256(data)[:16] == path.stem.rsplit("-", 1)[-1]:
            log.debug("tflite cache: hit %s", path)
            return data
        log.info("tflite cache: %s is corrupt; deleting it and converting again", path)
        forget(path)
    log.debug("tflite cache: miss %s in %s", key, directory)
    return None


def forget(path: Path) -> None:
    try:
        Path(path).unlink()
    except OSError:
        pass


def discard(key: str) -> None:
    """Delete every entry for ``key`` (one that matched its checksum but still did not load)."""
    try:
        for path in cache_dir().glob(f"{key}-*.tflite"):
            forget(path)
    except OSError:
        pass


def store(key: str, data: bytes) -> Path | None:
    """Save a conversion atomically; returns its path, or ``None`` where the cache cannot be written (a read-only
    home, a full disk): the run goes on without it."""
    directory = cache_dir()
    final = directory / f"{key}-{_sha256(data)[:16]}.tflite"
    tmp = directory / f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        log.info("tflite cache: cannot write %s (%s); converting again next run", final, exc)
        forget(tmp)
        return None
    log.debug("tflite cache: stored %s", final)
    return final
