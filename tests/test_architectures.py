"""Every architecture saves and loads back (safe mode) to the same predictions; unsafe files are refused."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_batch.classify import load_keras_model  # noqa: E402
from fer_batch.errors import ModelError, UsageError  # noqa: E402
from fer_batch.training.architectures import ARCHITECTURES, build_augmenter, build_model  # noqa: E402
from fer_batch.training.train import with_tta  # noqa: E402


@pytest.fixture(scope="module")
def faces():
    return np.random.default_rng(0).integers(0, 256, size=(3, 48, 48, 1), dtype=np.uint8)


def _predict(model, x):
    return np.asarray(model(x.astype("float32"), training=False))


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_save_load_round_trip(arch, faces, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(arch)
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 7)
    before = _predict(model, faces)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    loaded = load_keras_model(path)
    # Raw uint8 in, as the pipeline feeds it: the scaling lives inside the model.
    np.testing.assert_allclose(np.asarray(loaded.predict_on_batch(faces)), before, rtol=1e-5, atol=1e-6)


def test_flip_tta_round_trip_and_mirror_invariance(faces, tmp_path):
    keras.utils.set_random_seed(0)
    net = build_model("tiny")
    tta = with_tta(net, "flip")
    before = _predict(tta, faces)
    # The mean of a face's and its mirror image's predictions; the mirror image's is the same mean.
    expected = (_predict(net, faces) + _predict(net, faces[:, :, ::-1])) / 2
    np.testing.assert_allclose(before, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_predict(tta, faces[:, :, ::-1].copy()), before, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_predict(net, faces), before, atol=1e-6)  # the wrapper does something
    tta.save(tmp_path / "tta.keras")
    loaded = load_keras_model(tmp_path / "tta.keras")
    np.testing.assert_allclose(_predict(loaded, faces), before, rtol=1e-5, atol=1e-6)
    assert with_tta(net, "none") is net


def test_lambda_layer_is_refused_in_safe_mode(tmp_path):
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7, activation="softmax")(x)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelError, match="lambda.keras"):
        load_keras_model(path)


def test_wrong_interface_is_refused(tmp_path):
    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "three.keras")
    with pytest.raises(ModelError, match="expected input"):
        load_keras_model(tmp_path / "three.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="cannot load"):
        load_keras_model(tmp_path / "junk.keras")


def test_unknown_architecture_lists_the_names():
    with pytest.raises(UsageError) as err:
        build_model("vgg-huge")
    for name in ARCHITECTURES:
        assert name in str(err.value)


def test_augmenter_keeps_shape_and_range_and_is_not_in_the_model():
    x = np.random.default_rng(1).integers(0, 256, size=(4, 48, 48, 1)).astype("float32")
    out = np.asarray(build_augmenter("strong", seed=0)(x, training=True))
    assert out.shape == x.shape and not np.allclose(out, x)
    np.testing.assert_array_equal(np.asarray(build_augmenter("none")(x, training=True)), x)
    with pytest.raises(UsageError):
        build_augmenter("wild")
    names = {layer.name for layer in build_model("tiny").layers}
    assert "augment" not in names
