"""The classifier's output for a face does not depend on the faces it is batched with (exact resume needs this)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fer_batch.classify import Classifier
from fer_batch.errors import UsageError


@pytest.fixture(scope="module", params=["keras", "tflite"])
def classifier(request):
    return Classifier("fast", batch_size=32, runtime=request.param)


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


def test_tflite_runs_chunks_of_the_batch_and_pads_only_the_last_chunk():
    """TensorFlow Lite runs --batch-size 256 as network batches of TFLITE_CHUNK (4): a file's last faces are padded
    to 4, not 256, with the same probabilities as one network batch of another size (and the alignment that exact
    resume needs)."""
    from fer_batch.tflite import TFLITE_CHUNK, tflite_batch

    faces = np.random.default_rng(2).integers(0, 256, (300, 48, 48, 1), dtype=np.uint8)
    chunked = Classifier("fast", batch_size=256, runtime="tflite")
    whole = Classifier("fast", batch_size=320, runtime="tflite")
    odd = Classifier("fast", batch_size=30, runtime="tflite")  # 4 does not divide 30: network batches of 30
    assert chunked.network_batch == TFLITE_CHUNK == 4 and whole.network_batch == 4 and odd.network_batch == 30
    assert tuple(chunked._tflite.interpreter.get_input_details()[0]["shape"]) == (4, 48, 48, 1)
    assert tuple(odd._tflite.interpreter.get_input_details()[0]["shape"]) == (30, 48, 48, 1)
    assert [tflite_batch(b) for b in (4, 64, 256, 6, 30)] == [4, 4, 4, 6, 30]
    # The same bits in any batch size and position (XNNPACK), which is what lets the chunk be small.
    assert np.array_equal(chunked.predict(faces), odd.predict(faces))
    # Offsets count in the run's batches of 256: face 0 at position 250 sits at 250 % 4 = 2 of its chunk.
    assert np.array_equal(chunked.predict(faces[:20], offset=250), chunked.predict(faces, offset=250)[:20])
    assert Classifier("fast", batch_size=256, runtime="keras").network_batch == 256


def test_one_face_and_gray_batches_are_taken_and_the_wrong_inputs_refused_by_what_is_wrong(classifier):
    """predict takes uint8 0-255 (or floats in that range); faces scaled to 0-1 gave confident wrong answers (a
    smile read angry 0.84), so they are refused, as are NaN, out-of-range values and colour or other-size faces."""
    faces = np.random.default_rng(2).integers(0, 256, (3, 48, 48, 1), dtype=np.uint8)
    batch = classifier.predict(faces)
    assert np.array_equal(classifier.predict(faces[0]), batch[:1])  # one face, (48, 48, 1)
    assert np.array_equal(classifier.predict(faces[0, ..., 0]), batch[:1])  # one face, (48, 48)
    assert np.array_equal(classifier.predict(faces[..., 0]), batch)  # (N, 48, 48)
    np.testing.assert_allclose(classifier.predict(faces.astype(np.float32)), batch, atol=1e-6)
    refused = {
        "pixel values look scaled to 0-1": faces.astype(np.float32) / 255,
        # one 0-1 face among 0-255 ones had passed: the batch's largest value was looked at, not each face's
        "face 1 of 3: pixel values look scaled to 0-1": faces.astype(np.float32) / np.array([1, 255, 1])[:, None,
                                                                                                       None, None],
        "must lie in 0-255, got -1 to": faces.astype(np.float32) / 127.5 - 1,
        "must lie in 0-255, got 0 to 1020": faces.astype(np.int64) * 4,
        "contain NaN": np.full((1, 48, 48, 1), np.nan, np.float32),
        "got (1, 48, 48, 3); convert colour faces to grayscale": np.zeros((1, 48, 48, 3), np.uint8),
        "got (2, 64, 64, 1)": np.zeros((2, 64, 64, 1), np.uint8),
    }
    for message, crops in refused.items():
        with pytest.raises(UsageError, match=re.escape(message)):
            classifier.predict(crops)


def test_a_closed_classifier_lets_its_network_go_and_refuses_more_faces():
    faces = np.random.default_rng(3).integers(0, 256, (2, 48, 48, 1), dtype=np.uint8)
    with Classifier("fast", batch_size=32, runtime="tflite") as classifier:
        assert classifier.predict(faces).shape == (2, 7)
    assert classifier._tflite is None and classifier._model is None
    with pytest.raises(UsageError, match=r"this Classifier \(fast\) was closed"):
        classifier.predict(faces)
    classifier.close()  # twice is fine


@pytest.fixture(scope="module")
def photo_crops():
    """64 crops of a real photo (the Grace Hopper portrait bundled with matplotlib), at jittered places and sizes."""
    import cv2

    from synthetic_media import grace_hopper_rgb

    gray = cv2.cvtColor(grace_hopper_rgb(), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(64):
        side = int(rng.uniform(0.35, 0.6) * min(h, w))
        x, y = rng.integers(0, w - side), rng.integers(0, h - side)
        crops.append(cv2.resize(gray[y:y + side, x:x + side], (48, 48), interpolation=cv2.INTER_AREA))
    return np.stack(crops)[..., None]


def test_runtimes_agree_on_a_real_photo(photo_crops, tmp_path):
    import shutil

    from fer_batch.classify import resolve_model

    # The network without its card (no int8, no second look) runs as a float TFLite model: a user's own model is
    # never quantized.
    plain = shutil.copyfile(resolve_model("fast"), tmp_path / "mine.keras")
    keras_probs = Classifier(plain, runtime="keras").predict(photo_crops)
    tflite = Classifier(plain, runtime="tflite")
    assert tflite.runtime == "tflite" and tflite._tflite.quantization is None
    tflite_probs = tflite.predict(photo_crops)
    np.testing.assert_allclose(tflite_probs, keras_probs, rtol=0, atol=1e-5)
    assert np.array_equal(tflite_probs.argmax(axis=1), keras_probs.argmax(axis=1))


def test_tflite_conversion_leaves_logging_alone():
    import logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    Classifier("fast", batch_size=8, runtime="tflite")
    assert (list(root.handlers), root.level) == before


@pytest.mark.parametrize("gpu, expected", [(False, "tflite"), (True, "keras")])
def test_auto_runtime_is_tflite_without_a_gpu_and_keras_with_one(monkeypatch, gpu, expected):
    import fer_batch.classify as classify

    monkeypatch.setattr(classify, "_gpu_visible", lambda: gpu)  # what TensorFlow would see: no GPU machine here
    assert Classifier("fast", batch_size=8).runtime == expected


def test_auto_falls_back_to_keras_when_tflite_cannot_convert(monkeypatch, tmp_path):
    from fer_batch import classify
    from fer_batch.errors import ModelError

    def refuse(model, path, *settings):
        raise ModelError(f"--model {str(path)!r}: cannot run with --runtime tflite (ConverterError: op X)")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty conversion cache: the converter must run
    monkeypatch.setattr(classify, "convert", refuse)
    monkeypatch.setattr(classify, "_gpu_visible", lambda: False)
    assert Classifier("fast", batch_size=8).runtime == "keras"
    with pytest.raises(ModelError, match="cannot run with --runtime tflite"):
        Classifier("fast", batch_size=8, runtime="tflite")


def test_bad_runtime_is_a_usage_error():
    with pytest.raises(UsageError, match="--runtime 'onnx' is not allowed; choose one of auto, keras, tflite"):
        Classifier("fast", runtime="onnx")


def test_bad_batch_size_is_a_usage_error():
    with pytest.raises(UsageError, match="--batch-size"):
        Classifier("fast", batch_size=0)


@pytest.mark.parametrize(("option", "value", "said"), [
    ("threads", -1, "threads must be a whole number of at least 1, got -1"),
    ("threads", 2.5, "threads must be a whole number of at least 1, got 2.5"),
    ("batch_size", 10**9, r"batch_size \(--batch-size\) must be a whole number from 1 to 65,536, got 1000000000"),
    ("batch_size", "32", r"batch_size \(--batch-size\) must be a whole number from 1 to 65,536, got '32'"),
])
def test_bad_threads_or_batch_size_are_refused_before_the_cached_conversion_is_touched(option, value, said):
    """threads=-1 reached the TFLite interpreter, whose failure was taken for a damaged cache entry: the cached
    conversion was deleted and the model run in Keras instead."""
    with pytest.raises(UsageError, match=said):
        Classifier("fast", **{option: value})


def test_a_keras_quantized_model_runs_in_keras_under_auto(tmp_path):
    """``Model.quantize("int8")`` (how a large model is shipped) gives layers TFLite cannot convert: ``auto`` picks
    Keras for such a model at once, and its predictions stay close to the float model's."""
    import warnings

    from fer_batch.classify import load_keras_model
    from fer_batch.dequantize import is_quantized

    float_model = load_keras_model(Classifier("fast").path)
    assert not is_quantized(float_model)
    faces = np.random.default_rng(1).integers(0, 256, (16, 48, 48, 1), dtype=np.uint8)
    expected = np.asarray(float_model.predict_on_batch(faces))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        float_model.quantize("int8")
    path = tmp_path / "int8.keras"
    float_model.save(path)
    assert is_quantized(load_keras_model(path))
    classifier = Classifier(path, batch_size=16, runtime="auto")
    assert classifier.runtime == "keras"
    got = classifier.predict(faces)
    assert np.abs(got - expected).max() < 0.05
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.9


def test_a_keras_quantized_ensemble_runs_in_tflite_as_its_float_equivalent(tmp_path):
    """``--runtime tflite`` on a Keras-quantized model (nested, as an ensemble of TTA-wrapped networks is) converts
    its dequantized float copy: the same probabilities as Keras's int8 model, to the activation rounding Keras adds."""
    import warnings

    import keras

    from fer_batch.classify import load_keras_model
    from fer_batch.dequantize import dequantized, is_quantized
    from fer_batch.training.architectures import build_model
    from fer_batch.training.ensemble import ensemble
    from fer_batch.training.views import with_views

    members = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        members.append(with_views(build_model("tiny"), "crops"))
    model = ensemble(members)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.quantize("int8")
    path = tmp_path / "int8-ensemble.keras"
    model.save(path)
    int8 = load_keras_model(path)
    assert is_quantized(int8) and not is_quantized(dequantized(int8))
    faces = np.random.default_rng(2).integers(0, 256, (32, 48, 48, 1), dtype=np.uint8)
    want = Classifier(path, batch_size=32, runtime="keras").predict(faces)
    classifier = Classifier(path, batch_size=32, runtime="tflite")
    assert classifier.runtime == "tflite"
    got = classifier.predict(faces)
    assert np.abs(got - want).max() < 0.01
    assert (got.argmax(axis=1) == want.argmax(axis=1)).mean() >= 0.9


def test_a_card_asking_for_an_unknown_tflite_quantization_is_refused_by_name(tmp_path):
    import json
    import shutil

    from fer_batch.classify import resolve_model
    from fer_batch.errors import ModelError

    path = shutil.copyfile(resolve_model("fast"), tmp_path / "mine.keras")
    (tmp_path / "mine.json").write_text(json.dumps({"tflite_quantization": "int4"}))
    with pytest.raises(ModelError, match="tflite_quantization 'int4'; this release knows only 'dynamic-int8'"):
        Classifier(path, runtime="tflite")


def test_converting_a_quantized_model_for_tflite_does_not_move_auto_off_keras(tmp_path):
    """The float copy's conversion is cached under a key of its own: an explicit --runtime tflite reuses it, while
    `auto` keeps choosing Keras for a Keras-quantized model however often it was converted."""
    import warnings

    import keras

    from fer_batch.training.architectures import build_model

    keras.utils.set_random_seed(0)
    model = build_model("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.quantize("int8")
    path = tmp_path / "int8.keras"
    model.save(path)
    assert Classifier(path, batch_size=32).runtime == "keras"
    first = Classifier(path, batch_size=32, runtime="tflite")
    assert first.runtime == "tflite" and first._model is not None  # converted: the Keras model was loaded
    assert Classifier(path, batch_size=32).runtime == "keras"
    again = Classifier(path, batch_size=32, runtime="tflite")
    assert again.runtime == "tflite" and again._model is None  # from the cache, without loading Keras


def test_one_classifier_shared_by_threads_gives_each_its_own_answers():
    """Library users may call one Classifier from several threads: the calls take turns on its one interpreter
    (they failed with "There is at least 1 reference to internal data" before), and each gets what it alone gets."""
    import threading

    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, size=(40, 48, 48, 1), dtype=np.uint8) for _ in range(2)]
    shared = Classifier("fast", batch_size=32, runtime="tflite")
    want = [shared.predict(f) for f in faces]
    errors, mismatches = [], []

    def work(k):
        for _ in range(30):
            try:
                if not np.array_equal(shared.predict(faces[k]), want[k]):
                    mismatches.append(k)
            except Exception as exc:  # noqa: BLE001 (the failure being tested for)
                errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not mismatches, (errors[:2], len(mismatches))


@pytest.mark.parametrize("runtime", ["keras", "tflite"])
def test_a_model_without_a_softmax_is_refused_by_name(tmp_path, runtime):
    import keras

    from fer_batch.errors import ModelError

    inputs = keras.Input((48, 48, 1))
    logits = keras.layers.Dense(7)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs)))
    path = tmp_path / "logits.keras"
    keras.Model(inputs, logits).save(path)
    # At load, not at the first batch: a run had made its output files by then (and never saw it without faces).
    with pytest.raises(ModelError, match="outputs are not probabilities .* end the network with a softmax"):
        Classifier(str(path), batch_size=8, runtime=runtime)


@pytest.mark.parametrize("content", ['["not", "a", "card"]', '{"broken": '])
def test_a_json_beside_a_model_that_is_not_a_card_is_a_model_error(tmp_path, content):
    import shutil

    from fer_batch.classify import model_card, resolve_model
    from fer_batch.errors import ModelError

    shutil.copy(resolve_model("fast"), tmp_path / "mine.keras")
    (tmp_path / "mine.json").write_text(content)
    with pytest.raises(ModelError, match="beside the model, is read as its card"):
        model_card(tmp_path / "mine.keras")


def test_int8_near_ties_are_run_again_in_float(tmp_path):
    """A card that asks for int8 TFLite (the packaged fast's until 2026-12-04): a face whose two likeliest emotions
    lie within NEAR_TIE under int8 gets the float model's probabilities (so int8 cannot flip its class), every other
    face keeps int8's."""
    import sys
    from pathlib import Path

    from fer_batch.unsure_faces import NEAR_TIE

    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_media import probe_faces

    faces = probe_faces(tmp_path / "faces")
    int8 = _with_card(tmp_path, "int8", tflite_quantization="dynamic-int8")
    rechecked = Classifier(int8, batch_size=32, runtime="tflite")
    assert rechecked.quantization == "dynamic-int8" and rechecked._near_ties is not None
    raw = Classifier(int8, batch_size=32, runtime="tflite")
    raw._near_ties = None
    float_probs = Classifier(int8, batch_size=32, runtime="keras").predict(faces)
    got, int8 = rechecked.predict(faces), raw.predict(faces)
    top2 = np.sort(int8, axis=1)[:, -2:]
    ties = top2[:, 1] - top2[:, 0] < NEAR_TIE
    assert 0 < ties.sum() < len(faces) // 4, ties.sum()  # the set has near ties, and they are few
    assert (rechecked.faces_rechecked, raw.faces_rechecked) == (ties.sum(), 0)  # what the speed benchmark reports
    np.testing.assert_allclose(got[ties], float_probs[ties], atol=1e-5)
    np.testing.assert_array_equal(got[~ties], int8[~ties])
    # Beyond the ties, int8 can still move a probability by more than a face's margin, rarely (the bar).
    assert np.mean(got.argmax(axis=1) == float_probs.argmax(axis=1)) >= 0.99


def test_a_softmax_computed_in_bfloat16_is_accepted(tmp_path):
    """A model saved under mixed_bfloat16 whose softmax stays bf16 sums to 1 only within ~0.003: still probabilities."""
    import keras

    before = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        inputs = keras.Input((48, 48, 1))
        x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
        outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Dense(32, activation="relu")(x))
        model = keras.Model(inputs, outputs)
    finally:
        keras.config.set_dtype_policy(before)
    path = tmp_path / "bf16.keras"
    model.save(path)
    faces = np.random.default_rng(2).integers(0, 256, size=(16, 48, 48, 1), dtype=np.uint8)
    probs = Classifier(str(path), batch_size=16, runtime="keras").predict(faces)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_a_keras_int8_model_whose_card_asks_for_int8_tflite_runs_there(tmp_path):
    """ship_model --quantize int8 --tflite-int8 can make such a model: TFLite converts its float equivalent, for
    the int8 network and for the float one that re-runs near ties."""
    import json

    from fer_batch.classify import load_keras_model, resolve_model

    model = load_keras_model(resolve_model("fast"))
    model.quantize("int8")
    path = tmp_path / "mine.keras"
    model.save(path)
    (tmp_path / "mine.json").write_text(json.dumps({"tflite_quantization": "dynamic-int8"}))
    clf = Classifier(str(path), batch_size=32, runtime="tflite")
    assert clf.runtime == "tflite" and clf._near_ties is not None
    faces = np.random.default_rng(3).integers(0, 256, size=(8, 48, 48, 1), dtype=np.uint8)
    np.testing.assert_allclose(clf.predict(faces).sum(axis=1), 1.0, atol=1e-5)


def _with_card(tmp_path, name: str, **card):
    """The packaged fast copied to ``tmp_path/name.keras`` with ``card`` beside it."""
    import json
    import shutil

    from fer_batch.classify import resolve_model

    path = shutil.copyfile(resolve_model("fast"), tmp_path / f"{name}.keras")
    (tmp_path / f"{name}.json").write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("runtime", ["keras", "tflite"])
def test_unsure_faces_get_a_second_look_mirrored(photo_crops, tmp_path, runtime):
    """A card's flip_margin: faces whose two likeliest emotions lie within it get the mean of their own and their
    mirror image's probabilities; every other face keeps its own, and no face's result depends on its batch."""
    margin = 0.2
    plain = Classifier(_with_card(tmp_path, "plain"), batch_size=32, runtime=runtime)
    looked = Classifier(_with_card(tmp_path, "looked", flip_margin=margin), batch_size=32, runtime=runtime)
    assert (plain.flip_margin, looked.flip_margin) == (None, margin)
    own, mirrored = plain.predict(photo_crops), plain.predict(photo_crops[:, :, ::-1])
    top2 = np.sort(own, axis=1)[:, -2:]
    unsure = top2[:, 1] - top2[:, 0] < margin
    assert 0 < unsure.sum() < len(photo_crops), unsure.sum()
    got = looked.predict(photo_crops)
    assert looked.faces_flipped == unsure.sum() and plain.faces_flipped == 0
    np.testing.assert_allclose(got[unsure], (own[unsure] + mirrored[unsure]) / 2, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got[~unsure], own[~unsure])
    # Other faces in the batch (here: fewer, and so other mirrored ones beside them) change no face's bits.
    assert np.array_equal(looked.predict(photo_crops[40:], offset=40), got[40:])
    assert np.array_equal(looked.predict(photo_crops[45:50], offset=45), got[45:50])


def test_the_second_look_of_int8_gives_each_face_its_own_bits(photo_crops, tmp_path):
    """Dynamic int8 in TFLite: the mirrored faces go through in dense batches, which is exact only because a face's
    int8 result does not depend on its neighbours; the near ties are re-run in float with their own second look."""
    looked = Classifier(_with_card(tmp_path, "looked", tflite_quantization="dynamic-int8", flip_margin=0.2),
                        batch_size=32, runtime="tflite")
    assert looked.quantization == "dynamic-int8"
    got = looked.predict(photo_crops)
    assert looked.faces_flipped > 0
    reordered = looked.predict(np.concatenate([photo_crops[::-1], photo_crops[:7]]))
    assert np.array_equal(reordered[:len(photo_crops)][::-1], got)
    assert np.array_equal(reordered[len(photo_crops):], got[:7])


@pytest.mark.parametrize("margin", ["wide", 0, 1.5, True])
def test_a_card_with_a_bad_flip_margin_is_refused_by_name(tmp_path, margin):
    from fer_batch.errors import ModelError

    with pytest.raises(ModelError, match=r"flip_margin .* expected a number in \(0, 1\]"):
        Classifier(_with_card(tmp_path, "mine", flip_margin=margin), runtime="keras")


def test_a_model_without_a_softmax_leaves_no_output_files(tmp_path, one_face_photo, capsys):
    import keras

    from fer_batch.cli import EXIT_MODEL, main

    inputs = keras.Input((48, 48, 1))
    keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(inputs))).save(tmp_path / "logits.keras")
    out = tmp_path / "out" / "r.csv"
    assert main(["analyze", str(one_face_photo), "--out", str(out), "--model", str(tmp_path / "logits.keras"),
                 "--quiet"]) == EXIT_MODEL
    assert "outputs are not probabilities" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("out/.*"))


def test_user_models_with_a_uint8_input_an_empty_file_or_a_keras_json_beside_them(tmp_path):
    """A model declaring keras.Input(..., dtype="uint8") failed in TFLite with "Got value of type FLOAT32 but
    expected type UINT8" (exit 70); an empty .keras file was "File not found"; model.to_json() saved beside a model
    was shown as its card."""
    import json

    import keras
    import numpy as np

    from fer_batch.classify import Classifier, model_card
    from fer_batch.errors import ModelError

    inp = keras.Input((48, 48, 1), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(keras.ops.cast(inp, "float32"))
    out = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    model.save(tmp_path / "u8.keras")
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    expected = model.predict(faces[..., None], verbose=0)
    for runtime in ("tflite", "keras"):
        got = Classifier(tmp_path / "u8.keras", runtime=runtime).predict(faces)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    (tmp_path / "empty.keras").write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty.keras': not a .keras file"):
        Classifier(tmp_path / "empty.keras")
    (tmp_path / "u8.json").write_text(model.to_json())
    assert model_card(tmp_path / "u8.keras") == {}
    (tmp_path / "u8.json").write_text(json.dumps({"name": "mine", "status": "final"}))
    assert model_card(tmp_path / "u8.keras")["name"] == "mine"


def test_loading_a_run_folder_names_its_model_file():
    """load_keras_model (the training/ scripts' loader) said "cannot load as a Keras model (UnboundLocalError:
    cannot access local variable 'weights_store' ...)" for a run folder."""
    import tempfile
    from pathlib import Path

    from fer_batch.classify import load_keras_model
    from fer_batch.errors import ModelError

    with tempfile.TemporaryDirectory() as run:
        (Path(run) / "model.keras").write_bytes(b"")
        with pytest.raises(ModelError, match=r"is a folder; did you mean .*model\.keras', the model of the run"):
            load_keras_model(run, option="MODEL")
