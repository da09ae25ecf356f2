"""Distillation from cached multi-view teacher probabilities equals distillation with the teacher run online."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_batch.training.architectures import build_model  # noqa: E402
from fer_batch.training.fast_augment import OpenCVAugmenter  # noqa: E402
from fer_batch.training.teacher_views import cached_view_probs, make_views  # noqa: E402
from fer_batch.training.distillation import cached_distillation, distiller  # noqa: E402

from synthetic_faces import make_faces  # noqa: E402


def _faces():
    x, y = make_faces(3, seed=4)
    return x[:, :, :, None], y


def test_views_are_deterministic_augmented_uint8_copies():
    x, _ = _faces()
    aug = OpenCVAugmenter("crop-erase")
    v = make_views(x, aug, seed=3, views=3)
    assert v.shape == (3, *x.shape) and v.dtype == np.uint8
    assert np.array_equal(v, make_views(x, aug, seed=3, views=3))
    assert not np.array_equal(v[0], v[1]) and not np.array_equal(v[0], x)
    assert not np.array_equal(v, make_views(x, aug, seed=4, views=3))


def test_cached_multi_view_loss_equals_the_online_teachers(tmp_path):
    x, y = _faces()
    keras.utils.set_random_seed(0)
    teacher, student = build_model("tiny"), build_model("vgg-tiny")
    views = make_views(x, OpenCVAugmenter("crop-erase"), seed=1, views=2)
    calls = []

    def predict(faces):
        calls.append(len(faces))
        return np.asarray(teacher(faces.astype("float32"), training=False))

    cache = tmp_path / "teacher_views.npz"
    probs = cached_view_probs(lambda: predict, views, cache, key="k1")
    assert calls == [len(x), len(x)]  # each view classified once
    again = cached_view_probs(lambda: predict, views, cache, key="k1")
    assert calls == [len(x), len(x)] and np.array_equal(again, probs)  # read back, not recomputed
    cached_view_probs(lambda: predict, views, cache, key="another teacher")
    assert len(calls) == 4  # a different key is not trusted

    temperature, weight, smoothing = 4.0, 0.7, 0.1
    loss_cached, _ = cached_distillation(temperature, weight, smoothing)
    online = distiller(student, teacher, temperature, weight, smoothing)
    onehot = np.eye(7, dtype="float32")[y]
    for k in range(2):
        faces = views[k].astype("float32")
        student_probs = student(faces, training=False)
        cached = float(loss_cached(np.concatenate([onehot, probs[k]], axis=1), student_probs))
        live = float(online.compute_loss(faces, onehot, student_probs))
        assert cached == pytest.approx(live, rel=1e-5, abs=1e-6)


def test_a_corrupt_cache_is_recomputed(tmp_path):
    x, _ = _faces()
    views = np.stack([x, x])
    cache = tmp_path / "teacher_views.npz"
    cache.write_bytes(b"not an npz")
    probs = cached_view_probs(lambda: lambda f: np.full((len(f), 7), 1 / 7, np.float32), views, cache, key="k")
    assert probs.shape == (2, len(x), 7)
    with np.load(cache) as saved:
        assert str(saved["key"]) == "k"


def test_a_stopped_labelling_resumes_from_the_views_it_finished(tmp_path):
    x, _ = _faces()
    views = make_views(x, OpenCVAugmenter("crop-erase"), seed=2, views=3)
    teacher = build_model("tiny")
    calls = []

    def predict(faces):
        calls.append(len(faces))
        if len(calls) == 2 and stop_at_second:
            raise KeyboardInterrupt  # the session ends while view 2 is being labelled
        return np.asarray(teacher(faces.astype("float32"), training=False))

    cache = tmp_path / "teacher_views.npz"
    stop_at_second = True
    with pytest.raises(KeyboardInterrupt):
        cached_view_probs(lambda: predict, views, cache, key="k")
    assert not cache.exists() and (tmp_path / "teacher_views.npz.view0.npz").is_file()

    stop_at_second, calls[:] = False, []
    probs = cached_view_probs(lambda: predict, views, cache, key="k")
    assert calls == [len(x), len(x)]  # views 2 and 3 only
    for k in range(3):
        expected = np.asarray(teacher(views[k].astype("float32"), training=False))
        np.testing.assert_allclose(probs[k], expected, rtol=1e-6, atol=1e-7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher_views.npz"]  # the per-view files are merged

    # A part left by another teacher's stopped labelling, the right shape but another key:
    np.savez(tmp_path / "teacher_views.npz.view0.npz", key=np.array("k"), probs=probs[0])
    calls[:] = []
    cached_view_probs(lambda: predict, views, cache, key="another teacher")
    assert calls == [len(x)] * 3  # neither the whole cache nor a part is trusted under another key


def test_the_teacher_labels_on_every_core(monkeypatch):
    """Nothing else runs while a teacher labels the training faces: its XNNPACK interpreter gets all the cores
    (read back from the runner), not analyze's half."""
    from fer_batch import threads
    from fer_batch.training.distillation import teacher_predictor

    monkeypatch.setattr(threads, "usable_cores", lambda: 3)
    predict = teacher_predictor("fast")
    assert predict.__self__.runtime == "tflite" and predict.__self__._tflite.threads == 3
    x, _ = _faces()
    assert predict(x).shape == (len(x), 7)


def test_the_distillation_loss_is_hintons_blend_computed_by_hand():
    """weight x KL(teacher_T || student_T) x T^2 + (1 - weight) x the smoothed labels' cross-entropy, written out in
    numpy from the definition (the online and cached paths share kd_loss, so comparing them cannot catch a wrong
    direction of the KL, a missing T^2 or swapped weights)."""
    rng = np.random.default_rng(0)
    n, k, temperature, weight, smoothing = 5, 7, 4.0, 0.7, 0.1

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    teacher, student = softmax(rng.normal(size=(n, k)) * 2), softmax(rng.normal(size=(n, k)) * 2)
    labels = np.eye(k)[rng.integers(0, k, n)]
    pt, ps = softmax(np.log(teacher) / temperature), softmax(np.log(student) / temperature)
    kl = np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), axis=1)) * temperature**2
    smoothed = labels * (1 - smoothing) + smoothing / k
    ce = np.mean(-np.sum(smoothed * np.log(student), axis=1))
    want = weight * kl + (1 - weight) * ce
    loss, _ = cached_distillation(temperature, weight, smoothing)
    got = float(loss(np.concatenate([labels, teacher], axis=1).astype("float32"), student.astype("float32")))
    assert got == pytest.approx(want, rel=1e-4)
    assert kl > 0.05  # the two halves differ enough that a mistake in either shows


def test_cached_teacher_views_are_keyed_by_the_faces_themselves(tmp_path):
    """Other training faces, as many as before, must not be served the teacher's answers for the old ones."""
    from fer_batch.training.teacher_views import views_key

    teacher = tmp_path / "teacher.keras"
    teacher.write_bytes(b"the teacher's bytes")
    x, _ = _faces()
    other = x.copy()
    other[0, 0, 0, 0] ^= 1
    assert views_key(teacher, 0, 4, "crop-erase", x) == views_key(teacher, 0, 4, "crop-erase", x.copy())
    assert views_key(teacher, 0, 4, "crop-erase", x) != views_key(teacher, 0, 4, "crop-erase", other)
