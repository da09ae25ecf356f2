"""The classifier's output for a face does not depend on the faces it is batched with (exact resume needs this)."""

from __future__ import annotations

import numpy as np
import pytest

from fer_batch.classify import Classifier
from fer_batch.errors import UsageError


@pytest.fixture(scope="module")
def classifier():
    return Classifier("fast", batch_size=32)


def test_probabilities_identical_whatever_the_batch(classifier):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (70, 48, 48, 1), dtype=np.uint8)
    alone = np.concatenate([classifier.predict(faces[i:i + 1]) for i in range(5)])
    together = classifier.predict(faces)  # three network batches, the last one padded
    assert together.shape == (70, 7)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, rtol=1e-5)
    # Batch size never changes a face's result: alone (padded) or among others, at the same position, bit for bit.
    assert np.array_equal(alone, together[:5])
    # At another position in a batch, oneDNN may round the last float32 bit differently, nothing more...
    shuffled = classifier.predict(np.concatenate([faces[40:], faces[:40]]))
    np.testing.assert_allclose(together, np.concatenate([shuffled[30:], shuffled[:30]]), rtol=0, atol=1e-6)
    # ...so ``offset`` puts faces at the positions they would have had: here faces 40.. at 40 % 32 = 8 onwards.
    assert np.array_equal(classifier.predict(faces[40:], offset=40), together[40:])
    assert np.array_equal(classifier.predict(faces[13:20], offset=13 + 32), together[13:20])


def test_offset_places_faces_after_padding(classifier):
    faces = np.random.default_rng(1).integers(0, 256, (40, 48, 48, 1), dtype=np.uint8)
    probs = classifier.predict(faces, offset=30)  # positions 30, 31, then a second and third network batch
    assert probs.shape == (40, 7)
    np.testing.assert_allclose(probs, classifier.predict(faces), rtol=0, atol=1e-6)


def test_bad_batch_size_is_a_usage_error():
    with pytest.raises(UsageError, match="--batch-size"):
        Classifier("fast", batch_size=0)
