"""The per-user cache of TFLite conversions (fer_batch.tflite_cache): a miss converts and stores, a hit skips Keras
altogether and gives the same probabilities, a corrupt entry is rebuilt rather than trusted, and a changed model
file gets a new entry."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fer_batch import tflite_cache
from fer_batch.classify import Classifier, load_keras_model, resolve_model

FACES = np.random.default_rng(7).integers(0, 256, (12, 48, 48, 1), dtype=np.uint8)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "fer-batch" / "tflite"


def entries(cache, key: str = ""):
    """The cache's entries, or those of one key (the packaged fast has two: its int8 conversion, and the float one
    that re-runs its near ties)."""
    return sorted(cache.glob(f"{key}*.tflite")) if cache.exists() else []


def int8_key(clf) -> str:
    from fer_batch.tflite import tflite_key

    return tflite_key(clf.path, clf.quantization)


def expected_entries(clf) -> int:
    return 2 if clf._near_ties is not None else 1


def test_cache_dir_follows_xdg_and_ignores_a_relative_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tflite_cache.cache_dir() == tmp_path / "fer-batch" / "tflite"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # the XDG spec: relative paths are invalid, ignore them
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tflite_cache.cache_dir() == tmp_path / "home" / ".cache" / "fer-batch" / "tflite"


def test_key_is_the_content_not_the_name(tmp_path):
    a, b = tmp_path / "a.keras", tmp_path / "b.keras"
    shutil.copyfile(resolve_model("fast"), a)
    shutil.copyfile(resolve_model("fast"), b)
    assert tflite_cache.cache_key(a, "2.19.1") == tflite_cache.cache_key(b, "2.19.1")
    assert tflite_cache.cache_key(a, "2.19.1") != tflite_cache.cache_key(a, "2.20.0")
    with open(b, "ab") as f:
        f.write(b"\0")
    assert tflite_cache.cache_key(a, "2.19.1") != tflite_cache.cache_key(b, "2.19.1")


def test_miss_then_hit_skips_keras_and_agrees(cache):
    first = Classifier("fast", batch_size=16, runtime="tflite")
    assert first._model is not None  # a miss: loaded in Keras and converted
    stored = entries(cache)
    assert len(stored) == expected_entries(first)
    second = Classifier("fast", batch_size=16, runtime="tflite")
    assert second.runtime == "tflite" and second._model is None  # a hit: Keras never loaded the model
    assert entries(cache) == stored
    assert np.array_equal(first.predict(FACES), second.predict(FACES))
    auto = Classifier("fast", batch_size=16)  # auto on a CPU-only host uses the entry too
    if auto.runtime == "tflite":
        assert auto._model is None


def test_a_corrupt_entry_is_rebuilt_not_trusted(cache):
    first = Classifier("fast", batch_size=16, runtime="tflite")
    reference = first.predict(FACES)
    [entry] = entries(cache, int8_key(first))
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2])  # a write cut short: the checksum in its name no longer matches
    rebuilt = Classifier("fast", batch_size=16, runtime="tflite")
    assert rebuilt._model is not None  # converted again
    assert [p.read_bytes() == good for p in entries(cache, int8_key(first))] == [True]
    assert np.array_equal(rebuilt.predict(FACES), reference)


def test_an_entry_that_matches_its_checksum_but_does_not_load_is_rebuilt(cache):
    key = Classifier("fast", batch_size=16, runtime="tflite")  # creates the real entry...
    from fer_batch.tflite import tflite_key

    k = tflite_key(key.path, key.quantization)
    for p in entries(cache):
        p.unlink()
    tflite_cache.store(k, b"not a flatbuffer at all")  # ...replaced by garbage with a valid name
    clf = Classifier("fast", batch_size=16, runtime="tflite")
    assert clf.runtime == "tflite" and clf._model is not None
    assert all(p.read_bytes() != b"not a flatbuffer at all" for p in entries(cache))
    assert len(entries(cache)) == expected_entries(clf)


def test_a_changed_model_file_gets_a_new_entry(cache, tmp_path):
    path = tmp_path / "mine.keras"
    shutil.copyfile(resolve_model("fast"), path)
    before = Classifier(path, batch_size=16, runtime="tflite").predict(FACES)
    assert len(entries(cache)) == 1
    model = load_keras_model(path)  # "retrain" it: same name, other weights
    last = model.layers[-1]
    last.set_weights([w * 1.5 for w in last.get_weights()])
    model.save(path)
    changed = Classifier(path, batch_size=16, runtime="tflite")
    assert changed._model is not None and len(entries(cache)) == 2
    expected = np.asarray(model.predict_on_batch(FACES.astype(np.float32)))
    np.testing.assert_allclose(changed.predict(FACES), expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    assert not np.allclose(changed.predict(FACES), before, atol=1e-3)


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    clf = Classifier("fast", batch_size=16, runtime="tflite")
    assert clf.runtime == "tflite" and clf.predict(FACES).shape == (12, 7)
