"""Classification metrics against numbers worked out by hand."""

import json

import numpy as np
import pytest

from fer_batch.labels import EMOTIONS
from fer_batch.training.metrics import classification_report, confusion_matrix, format_report

# Ten faces, four of the seven classes present. Worked by hand:
#   true angry(0) x4 -> predicted angry, angry, disgust, happy
#   true disgust(1) x2 -> disgust, angry
#   true happy(3) x3 -> happy, happy, neutral
#   true neutral(6) x1 -> neutral
Y_TRUE = [0, 0, 0, 0, 1, 1, 3, 3, 3, 6]
Y_PRED = [0, 0, 1, 3, 1, 0, 3, 3, 6, 6]

EXPECTED_CM = [
    [2, 1, 0, 1, 0, 0, 0],
    [1, 1, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 2, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 1],
]
# precision = TP / column sum, recall = TP / row sum, F1 = 2PR / (P + R)
EXPECTED = {
    "angry": (2 / 3, 2 / 4, 4 / 7, 4),  # F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7
    "disgust": (1 / 2, 1 / 2, 1 / 2, 2),
    "fear": (0.0, 0.0, 0.0, 0),
    "happy": (2 / 3, 2 / 3, 2 / 3, 3),
    "sad": (0.0, 0.0, 0.0, 0),
    "surprise": (0.0, 0.0, 0.0, 0),
    "neutral": (1 / 2, 1 / 1, 2 / 3, 1),  # F1 = 2 * (1/2 * 1) / (3/2) = 2/3
}


def test_confusion_matrix_by_hand():
    assert confusion_matrix(Y_TRUE, Y_PRED).tolist() == EXPECTED_CM


def test_report_by_hand():
    r = classification_report(Y_TRUE, Y_PRED)
    assert r["n"] == 10
    assert r["accuracy"] == pytest.approx(6 / 10)
    assert r["confusion_matrix"] == EXPECTED_CM
    assert list(r["per_class"]) == list(EMOTIONS)
    for name, (p, rec, f1, support) in EXPECTED.items():
        got = r["per_class"][name]
        assert got["precision"] == pytest.approx(p), name
        assert got["recall"] == pytest.approx(rec), name
        assert got["f1"] == pytest.approx(f1), name
        assert got["support"] == support, name
    # Macro-F1 over the four classes that occur: (4/7 + 1/2 + 2/3 + 2/3) / 4 = (101/42) / 4 = 101/168.
    assert r["macro_f1"] == pytest.approx(101 / 168)
    json.dumps(r)  # plain numbers only: it goes straight into metrics.json


def test_class_predicted_but_absent_counts_as_zero_f1():
    # angry: P 1, R 1/2, F1 2/3; fear (predicted once, never true): P 0, F1 0 -> macro (2/3 + 0) / 2.
    r = classification_report([0, 0], [0, 2])
    assert r["per_class"]["fear"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["macro_f1"] == pytest.approx(1 / 3)
    assert r["accuracy"] == pytest.approx(1 / 2)


def test_perfect_and_empty():
    y = np.arange(7).repeat(3)
    r = classification_report(y, y)
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0
    empty = classification_report([], [])
    assert empty["n"] == 0 and empty["accuracy"] == 0.0 and empty["macro_f1"] == 0.0


def test_labels_out_of_range_are_refused():
    with pytest.raises(ValueError, match="outside 0-6"):
        confusion_matrix([0, 7], [0, 1])
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix([0, 1], [0])


def test_format_report_shows_every_class_and_accuracy():
    text = format_report(classification_report(Y_TRUE, Y_PRED), title="== val ==")
    lines = text.splitlines()
    assert lines[0] == "== val =="
    for name in EMOTIONS:
        assert any(line.startswith(name) for line in lines)
    summary = next(line for line in lines if line.startswith("accuracy"))
    assert "accuracy 0.6000" in summary and "macro-F1 0.6012" in summary and "(n=10)" in summary


def test_format_report_marks_classes_without_labelled_faces():
    """A dataset of some emotions only (your own three classes): recall and F1 of the others mean nothing and show
    as '-', and a line names those classes; a predicted-but-absent class keeps its precision 0."""
    lines = format_report(classification_report([3, 3, 4, 6], [3, 2, 4, 6])).splitlines()
    fear = next(line for line in lines if line.startswith("fear"))
    assert fear.split() == ["fear", "0.000", "-", "-", "0"]
    happy = next(line for line in lines if line.startswith("happy"))
    assert happy.split() == ["happy", "1.000", "0.500", "0.667", "2"]
    assert lines[-1].startswith("no labelled faces of angry, disgust, fear, surprise here")


def test_the_confusion_png_marks_a_class_without_faces_as_the_table_does(tmp_path):
    """Its row read 0.00 in every cell, a recall of 0 to the eye; it says '-' and is grey."""
    from PIL import Image

    from fer_batch.training.plots import confusion_cells, plot_confusion

    cm = confusion_matrix([3, 3, 4, 6], [3, 2, 4, 6])
    norm, texts = confusion_cells(cm)
    assert texts[0] == ["-"] * 7 and np.isnan(norm[0]).all()
    assert texts[3][3] == "0.50\n1" and texts[3][2] == "0.50\n1" and texts[3][0] == "0.00\n0"
    png = np.asarray(Image.open(plot_confusion(cm, tmp_path / "c.png")).convert("RGB"))
    assert (np.abs(png.astype(int) - (0xE6, 0xE6, 0xE6)).sum(axis=2) < 6).sum() > 1000  # the grey rows
