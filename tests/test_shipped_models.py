"""The packaged models keep their accuracy: a fixed, seeded sample of 1,000 FER-2013 PublicTest faces.

Each model's file must score what its card records for the whole split, less 2 points for the sampling error of
1,000 faces (a standard error of about 1.4 points at 70%); a final model's card must meet the issue's floor, and
an interim one is an expected failure until its card does. Skips a model whose file is not shipped yet, and
everything when the shared dataset is absent.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest



DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013.csv.gz"
FLOOR = {"fast": 0.68, "accurate": 0.70}  # issue 13's floors
MARGIN = 0.02
SAMPLE, SEED = 1000, 2013


@pytest.fixture(scope="module")
def public_test_sample():
    """``(x, y)``: 1,000 PublicTest rows drawn with a fixed seed, in file order; uint8 (1000, 48, 48, 1)."""
    if not DATA.is_file():
        pytest.skip(f"shared dataset not found at {DATA}")
    from fer_batch.training.datasets import parse_pixels

    with gzip.open(DATA, "rt", newline="") as f:
        rows = [(r["emotion"], r["pixels"]) for r in csv.DictReader(f) if r["Usage"].strip() == "PublicTest"]
    assert len(rows) >= SAMPLE, f"{DATA} has only {len(rows)} PublicTest rows"
    chosen = np.sort(np.random.default_rng(SEED).choice(len(rows), size=SAMPLE, replace=False))
    x = np.stack([parse_pixels(rows[i][1]) for i in chosen])[..., None]
    y = np.array([int(rows[i][0]) for i in chosen])
    assert set(y.tolist()) == set(range(7))
    return x, y


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(FLOOR))
def test_packaged_model_accuracy(name, request):
    from fer_batch.classify import MODELS_DIR, PACKAGED, Classifier, model_card

    assert name in PACKAGED
    path = MODELS_DIR / f"{name}.keras"
    if not path.is_file():
        pytest.skip(f"{path} is not shipped yet")
    x, y = request.getfixturevalue("public_test_sample")
    classifier = Classifier(name)  # the product's own loader: safe mode, interface checked
    probs = np.concatenate([classifier.predict(x[i:i + 256]) for i in range(0, len(x), 256)])
    accuracy = float((probs.argmax(axis=1) == y).mean())
    card = model_card(name)
    # The accuracy recorded in the model's card (whole PublicTest split) must hold on this sample too.
    recorded = card["publictest_accuracy"]
    assert accuracy >= recorded - MARGIN, f"{name}.keras: {accuracy:.4f} on {SAMPLE} faces, card says {recorded:.4f}"
    floor = FLOOR[name]
    print(f"{name}: accuracy {accuracy:.4f} on {SAMPLE} PublicTest faces, {recorded:.4f} on all of them "
          f"(floor {floor:.2f}, status {card['status']})")
    if card["status"] == "interim":
        # An interim model is shipped knowingly below the floor, which its card's whole-PublicTest figure
        # (not this sample, whose 2-point margin would let a 66% model pass for 68%) shows; once one reaches it,
        # this xfail turns into a failure (strict) so the card must be updated to "final".
        if recorded < floor:
            pytest.xfail(f"{name} is an interim model ({recorded:.4f} < floor {floor:.2f}); see training/README.md")
        pytest.fail(f"{name} reaches its floor ({recorded:.4f} >= {floor:.2f}): mark its card status 'final'")
    assert recorded >= floor, f"{name}.json: PublicTest accuracy {recorded:.4f} < floor {floor:.2f}"
    assert accuracy >= floor - MARGIN, f"{name}.keras: {accuracy:.4f} on {SAMPLE} PublicTest faces < {floor:.2f}"


def test_every_shipped_model_has_a_card():
    """A packaged model without its card (recipe, command, measured accuracy with its per-class table, status) is
    not shippable; each table's recalls, weighted by support, give back the figure it belongs to (PublicTest's 3,589
    faces)."""
    from fer_batch.classify import MODELS_DIR, PACKAGED, model_card
    from fer_batch.labels import EMOTIONS

    shipped = [name for name in PACKAGED if (MODELS_DIR / f"{name}.keras").is_file()]
    assert "fast" in shipped, "the default model must ship with the package"
    for name in shipped:
        card = model_card(name)
        assert card.get("status") in ("interim", "final"), name
        for key in ("arch", "publictest_accuracy", "publictest_per_class", "command", "epochs", "machine"):
            assert key in card, f"{name}.json lacks {key!r}"
        tables = [("publictest_accuracy", "publictest_per_class")]
        if card.get("tflite_quantization"):
            tables.append(("tflite_publictest_accuracy", "tflite_publictest_per_class"))
        for figure, key in tables:
            rows = card[key]
            assert list(rows) == list(EMOTIONS), f"{name}.json: {key} rows {list(rows)}"
            assert sum(row["support"] for row in rows.values()) == 3589, f"{name}.json: {key} is not of PublicTest"
            # Whole faces: recalls to 4 places times at most 895 faces are exact to well under half a face.
            correct = sum(round(row["recall"] * row["support"]) for row in rows.values())
            assert correct == round(card[figure] * 3589), f"{name}.json: {key} counts {correct} faces right, " \
                                                          f"{figure} {card[figure]:.4f} of 3,589 faces"
        assert (MODELS_DIR / f"{name}.keras").stat().st_size < 25 * 2**20


@pytest.fixture(scope="module")
def fast_keras_and_tflite():
    """The packaged ``fast`` in Keras (float) and as its card runs it in TensorFlow Lite (float, or int8)."""
    from fer_batch.classify import Classifier

    return Classifier("fast", runtime="keras"), Classifier("fast", runtime="tflite")


def _bar(tflite) -> tuple[float, float]:
    """(least share of faces given the Keras class, largest probability difference) for the TFLite runtime: float
    TFLite computes what Keras does, to rounding; int8 is held to issue 19's 99% of faces."""
    if tflite.quantization is None:
        return 1.0, 1e-4
    elif tflite.quantization == "dynamic-int8":
        return 0.99, 1.0
    else:
        raise AssertionError(f"fast.json asks for TFLite quantization {tflite.quantization!r}, untested here")


def _same_class(pair, faces) -> tuple[float, float]:
    float_probs, tflite_probs = (c.predict(faces) for c in pair)
    assert np.allclose(tflite_probs.sum(axis=1), 1.0, atol=1e-5)
    return (float(np.mean(float_probs.argmax(axis=1) == tflite_probs.argmax(axis=1))),
            float(np.abs(float_probs - tflite_probs).max()))


def test_fast_in_tflite_gives_the_keras_class_on_generated_faces(fast_keras_and_tflite, tmp_path_factory):
    """Faces as analyze cuts them (detected, aligned) from a generated video and photo, and jittered crops."""
    from synthetic_media import probe_faces

    faces = probe_faces(tmp_path_factory.mktemp("probe"))
    assert len(faces) >= 230
    agreement, gap = _same_class(fast_keras_and_tflite, faces)
    print(f"fast in TFLite ({fast_keras_and_tflite[1].quantization or 'float'}): the Keras class on "
          f"{100 * agreement:.1f}% of {len(faces)} generated faces, largest probability difference {gap:.2e}")
    least, widest = _bar(fast_keras_and_tflite[1])
    assert agreement >= least and gap <= widest


@pytest.mark.data
def test_fast_in_tflite_gives_the_keras_class_on_publictest_faces(fast_keras_and_tflite, public_test_sample):
    from fer_batch.classify import model_card

    x, y = public_test_sample
    agreement, gap = _same_class(fast_keras_and_tflite, x)
    print(f"fast in TFLite: the Keras class on {100 * agreement:.1f}% of {len(x)} PublicTest faces, "
          f"largest probability difference {gap:.2e}")
    least, widest = _bar(fast_keras_and_tflite[1])
    assert agreement >= least and gap <= widest
    card = model_card("fast")
    if "tflite_agreement_with_float" in card:
        # The card's figure (whole split) holds on the sample, within the sample's error.
        assert agreement >= card["tflite_agreement_with_float"] - 0.01


@pytest.mark.parametrize("name", ["fast", "accurate"])
def test_packaged_model_reads_a_calm_portrait_as_neutral_and_is_not_collapsed(name, tmp_path_factory):
    """Runs without the shared dataset (so in CI too): the faces analyze cuts from the generated media are all Grace
    Hopper's calm portrait, which a person labels neutral; most must come out neutral. Across those and the jittered
    crops, the model must still use several classes: one that answers a single class for everything (a collapsed or
    mislabelled file) fails one half or the other."""
    from fer_batch.classify import Classifier, resolve_model
    from fer_batch.labels import EMOTIONS
    from synthetic_media import probe_faces

    if not resolve_model(name).is_file():
        pytest.skip(f"{name} is not shipped yet")
    folder = tmp_path_factory.mktemp(f"calm-{name}")
    aligned = probe_faces(folder / "aligned", jittered=0)
    everything = probe_faces(folder / "all")
    classifier = Classifier(name)
    neutral = float(np.mean(classifier.predict(aligned).argmax(axis=1) == EMOTIONS.index("neutral")))
    classes = set(classifier.predict(everything).argmax(axis=1).tolist())
    print(f"{name}: neutral on {100 * neutral:.0f}% of {len(aligned)} aligned portrait faces; classes used "
          f"across {len(everything)} faces: {sorted(EMOTIONS[c] for c in classes)}")
    assert len(aligned) >= 30 and neutral >= 0.7
    assert len(classes) >= 3
