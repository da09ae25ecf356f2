"""Int8 convolutions (fer_batch.layers.Int8Conv2D, fer_batch.training.compress): the kernels' rounding is all that
changes, the files shrink, and they load in safe mode, in an ensemble, and back as floats for TFLite."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_batch.classify import Classifier, load_keras_model  # noqa: E402
from fer_batch.dequantize import dequantized, is_quantized  # noqa: E402
from fer_batch.layers import Int8Conv2D, quantize_per_channel  # noqa: E402
from fer_batch.training.architectures import build_model  # noqa: E402
from fer_batch.training.compress import int8_convolutions  # noqa: E402
from fer_batch.training.ensemble import ensemble, ensemble_members  # noqa: E402
from fer_batch.training.views import with_views  # noqa: E402

from synthetic_faces import make_faces  # noqa: E402


@pytest.fixture(scope="module")
def faces():
    return make_faces(16, seed=11)[0][:, :, :, None].astype("float32")


def _predict(model, x):
    return np.asarray(model(x, training=False))


def test_per_channel_rounding_is_within_half_a_step():
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 1, (3, 3, 4, 5)).astype(np.float32) * np.array([1e-3, 0.1, 1, 10, 0], np.float32)
    q, scale = quantize_per_channel(kernel)
    assert q.dtype == np.int8 and scale.shape == (5,)
    restored = q.astype(np.float32) / scale
    step = np.abs(kernel).reshape(-1, 5).max(axis=0) / 127
    assert np.all(np.abs(restored - kernel).reshape(-1, 5).max(axis=0) <= step / 2 + 1e-7)
    assert np.abs(q).reshape(-1, 5)[:, :4].max(axis=0).tolist() == [127] * 4  # each channel uses the full range
    assert not q[..., 4].any() and scale[4] == 1.0  # a channel of zeros stays zeros


@pytest.mark.parametrize("padding,strides,bias", [("same", 1, False), ("valid", 2, True)])
def test_int8_conv_computes_the_float_conv_with_rounded_weights(padding, strides, bias):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (2, 9, 9, 3)).astype("float32")
    conv = keras.layers.Conv2D(4, 3, padding=padding, strides=strides, use_bias=bias, activation="relu")
    conv.build((None, 9, 9, 3))
    if bias:
        conv.bias.assign(rng.normal(0, 1, 4).astype("float32"))
    q = Int8Conv2D.from_conv(conv)
    # With the float layer's own kernel replaced by the rounded one, the two layers agree to float precision.
    rounded = np.asarray(q.kernel_int8).astype("float32") / np.asarray(q.kernel_scale)
    assert not np.array_equal(rounded, np.asarray(conv.kernel))
    conv.kernel.assign(rounded)
    np.testing.assert_allclose(np.asarray(q(x)), np.asarray(conv(x)), rtol=1e-5, atol=1e-5)


def test_a_network_with_int8_convs_predicts_as_before_and_shrinks(faces, tmp_path):
    keras.utils.set_random_seed(3)
    net = build_model("vgg-small")
    net(faces[:2], training=True)  # batch statistics move from their defaults: the copy must carry every weight
    small = int8_convolutions(net)
    assert sum(isinstance(layer, Int8Conv2D) for layer in small.layers) == sum(
        type(layer) is keras.layers.Conv2D for layer in net.layers) > 0
    assert np.abs(_predict(small, faces) - _predict(net, faces)).max() < 2e-3
    net.save(tmp_path / "float.keras")
    small.save(tmp_path / "int8.keras")
    assert (tmp_path / "int8.keras").stat().st_size < 0.6 * (tmp_path / "float.keras").stat().st_size
    loaded = load_keras_model(tmp_path / "int8.keras")  # the product's loader: safe mode
    np.testing.assert_array_equal(_predict(loaded, faces), _predict(small, faces))
    assert is_quantized(loaded)


def test_an_int8_ensemble_loads_and_turns_back_into_floats(faces, tmp_path):
    members = []
    for seed, arch in ((0, "vgg-tiny"), (1, "tiny")):
        keras.utils.set_random_seed(seed)
        members.append(with_views(int8_convolutions(build_model(arch)), "flip"))
    one_by_one = [_predict(m, faces) for m in members]
    model = ensemble(members)
    model.quantize("int8")  # the dense layers too, as ship_ensemble.py --quantize int8-all does
    model.save(tmp_path / "ensemble.keras")
    classifier = Classifier(str(tmp_path / "ensemble.keras"), runtime="keras")
    probs = classifier.predict(faces.astype(np.uint8))
    assert np.abs(probs - np.mean(one_by_one, axis=0)).max() < 0.05  # int8 dense activations round a little
    assert len(ensemble_members(classifier.model)) == 2
    floats = dequantized(classifier.model)
    assert not is_quantized(floats)
    assert not any(isinstance(layer, Int8Conv2D) for layer in floats._flatten_layers())
    assert sum(type(layer) is keras.layers.Conv2D for layer in floats._flatten_layers()) > 0
    # The float copy is the int8 model without Keras's activation rounding: as close as that rounding allows.
    assert np.abs(_predict(floats, faces) - probs).max() < 0.05
    np.testing.assert_allclose(_predict(floats, faces), np.mean(one_by_one, axis=0), atol=2e-3)
