"""Distillation targets over augmented views, computed once: the teacher's probabilities for K fixed augmented
copies of every training face, so that a student can train on augmented faces without running the teacher on
every batch.

``--teacher-mode cached`` caches the teacher's probabilities for the un-augmented faces, so the student learns the
teacher's answer for a face while it sees a shifted, rotated, erased copy of it: cheap, but not what the teacher
would say about that copy. Here the augmented copies themselves are fixed: view ``k`` of face ``i`` is made once by
the training augmenter (keyed by the run's seed, ``k`` and the block of faces), rounded to uint8 like a real face,
and kept in memory (K x 66 MB for FER-2013's Training rows); the teacher classifies each view once (K passes over
the data instead of one per epoch); epoch ``e`` trains on view ``e % K`` of every face with its own teacher targets.
The loss is then exactly the online distiller's on those faces (tested).
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np

BLOCK = 512  # faces augmented per generator draw; part of the views' definition (keep it fixed)


def make_views(x: np.ndarray, augmenter, seed: int, views: int) -> np.ndarray:
    """(views, N, H, W, 1) uint8: ``views`` augmented copies of uint8 faces ``x`` (N, H, W, 1), deterministic in
    (seed, view, block)."""
    out = np.empty((views, *x.shape), np.uint8)
    for k in range(views):
        for start in range(0, len(x), BLOCK):
            block = x[start:start + BLOCK].astype("float32")
            augmented = augmenter(block, np.random.default_rng([seed, 7, k, start // BLOCK]))
            out[k, start:start + BLOCK] = np.clip(np.rint(augmented), 0, 255).astype(np.uint8)
    return out


def views_key(teacher: Path, seed: int, views: int, augment: str, faces: np.ndarray) -> str:
    """What the cached probabilities depend on: the teacher file's bytes, the training faces themselves (other data
    with as many rows must not reuse them) and how the views were made."""
    from ..tflite_cache import file_sha256

    data = hashlib.sha256(np.ascontiguousarray(faces)).hexdigest()[:16]  # the array's own buffer, not a copy
    return f"{file_sha256(teacher)[:16]}-faces{data}-seed{seed}-views{views}-{augment}-n{len(faces)}-block{BLOCK}"


def cached_view_probs(make_predict, views: np.ndarray, cache: Path, key: str) -> np.ndarray:
    """(K, N, 7) teacher probabilities for ``views`` (K, N, ...), read from ``cache`` when it was made for ``key``
    (the same teacher file and views), else computed and saved there with ``make_predict()``'s ``predict(faces) ->
    probs`` (the teacher is loaded once, and only when the cache cannot serve).

    Each view is saved as soon as it is labelled (``cache`` with ``.viewK.npz`` appended): labelling FER-2013 with an
    ensemble teacher takes about ten minutes a view on two cores, and a run stopped part-way resumes from the
    views it finished instead of from the first.
    """
    whole = _load(cache, key)
    if whole is not None and whole.shape[:2] == views.shape[:2]:
        return whole
    predict = None
    probs = []
    for k, faces in enumerate(views):
        part = cache.with_name(f"{cache.name}.view{k}.npz")
        done = _load(part, key)
        if done is not None and done.shape[0] == len(faces):
            print(f"teacher: view {k + 1} of {len(views)} read from {part.name}", file=sys.stderr, flush=True)
            probs.append(done)
            continue
        if predict is None:
            predict = make_predict()
        print(f"teacher: view {k + 1} of {len(views)} ({len(faces)} faces) ...", file=sys.stderr, flush=True)
        probs.append(np.asarray(predict(faces), np.float32))
        _save(part, key, probs[-1])
    probs = np.stack(probs)
    _save(cache, key, probs)
    for k in range(len(views)):  # the whole cache now holds them
        cache.with_name(f"{cache.name}.view{k}.npz").unlink(missing_ok=True)
    return probs


def _load(path: Path, key: str) -> np.ndarray | None:
    """The probabilities saved at ``path`` for ``key``; None when absent, unreadable or made for another key."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            return saved["probs"] if str(saved["key"]) == key else None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # unreadable or from another run: computed again


def _save(path: Path, key: str, probs: np.ndarray) -> None:
    """Written whole or not at all: a stop mid-write leaves the previous file (or none), never a torn one."""
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, key=np.array(key), probs=probs)
    tmp.replace(path)
