"""Test-time views (flip, crops) and ensembles: what they compute, and that they save and load in safe mode."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_batch.classify import load_keras_model  # noqa: E402
from fer_batch.errors import UsageError  # noqa: E402
from fer_batch.layers import Shift  # noqa: E402
from fer_batch.training.architectures import build_model  # noqa: E402
from fer_batch.training.ensemble import ensemble, ensemble_members  # noqa: E402
from fer_batch.training.views import CROP_OFFSETS, CROP_SHIFT, with_views  # noqa: E402

from synthetic_faces import make_faces  # noqa: E402


@pytest.fixture(scope="module")
def faces():
    return make_faces(4, seed=5)[0][:, :, :, None]


def _predict(model, x):
    return np.asarray(model(x.astype("float32"), training=False))


def _reflect_shift(x, dy, dx):
    pad = max(abs(dy), abs(dx))
    p = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return p[:, pad - dy:pad - dy + x.shape[1], pad - dx:pad - dx + x.shape[2]]


@pytest.mark.parametrize("dy,dx", [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2), (3, -1)])
def test_shift_is_a_window_of_the_reflected_face(faces, dy, dx):
    x = faces.astype("float32")
    out = np.asarray(Shift(dy, dx)(x))
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, _reflect_shift(x, dy, dx))
    if dy or dx:  # the content really moved: the interior is the input displaced by (dy, dx)
        h, w = x.shape[1:3]
        inner = out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
        np.testing.assert_array_equal(inner, x[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)])


def test_crop_views_average_ten_shifted_and_mirrored_faces(faces, tmp_path):
    keras.utils.set_random_seed(0)
    net = build_model("tiny")
    model = with_views(net, "crops")
    expected = np.mean([_predict(net, v) for dy, dx in CROP_OFFSETS
                        for s in [_reflect_shift(faces.astype("float32"), dy * CROP_SHIFT, dx * CROP_SHIFT)]
                        for v in (s, s[:, :, ::-1])], axis=0)
    got = _predict(model, faces)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, _predict(with_views(net, "flip"), faces), atol=1e-5)
    model.save(tmp_path / "crops.keras")
    np.testing.assert_allclose(_predict(load_keras_model(tmp_path / "crops.keras"), faces), got, rtol=1e-5, atol=1e-6)


def test_unknown_views_are_refused_with_the_choices():
    with pytest.raises(UsageError, match="choose one of none, flip, crops"):
        with_views(build_model("tiny"), "ten")


def test_ensemble_predicts_the_mean_of_its_members_and_loads_in_safe_mode(faces, tmp_path):
    members = []
    for seed, arch in ((0, "tiny"), (1, "vgg-tiny")):
        keras.utils.set_random_seed(seed)
        members.append(with_views(build_model(arch), "flip") if seed else build_model(arch))
    one_by_one = [_predict(m, faces) for m in members]
    model = ensemble(members)
    np.testing.assert_allclose(_predict(model, faces), np.mean(one_by_one, axis=0), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "ensemble.keras")
    loaded = load_keras_model(tmp_path / "ensemble.keras")  # safe mode
    np.testing.assert_allclose(_predict(loaded, faces), np.mean(one_by_one, axis=0), rtol=1e-5, atol=1e-6)
    assert len(ensemble_members(loaded)) == 2
    for member, alone in zip(ensemble_members(loaded), one_by_one):
        np.testing.assert_allclose(_predict(member, faces), alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(UsageError, match="at least two"):
        ensemble(members[:1])
