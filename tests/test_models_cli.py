"""``fer-batch models``: the packaged models as their cards give them, read without importing TensorFlow, and one
model's card in full; a wrong name is exit 3 and lists the packaged ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from fer_batch.classify import MODELS_DIR, model_card
from fer_batch.cli import EXIT_MODEL, EXIT_OK

from test_startup import probe_cli_output as probe_cli


def test_the_list_gives_each_packaged_model_as_analyze_runs_it_without_tensorflow():
    code, heavy, out, _ = probe_cli("models")
    assert code == EXIT_OK and heavy == []
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.split()}
    fast, accurate = model_card("fast"), model_card("accurate")
    # fast: float, TFLite on a CPU and Keras on a GPU alike; accurate (Keras-int8 layers): Keras everywhere
    # (Classifier's auto).
    assert lines["fast"].endswith(f"{100 * fast['publictest_accuracy']:.2f}% (float)"), lines["fast"]
    assert lines["accurate"].endswith(f"{100 * accurate['publictest_accuracy']:.2f}% (Keras, int8 kernels)")
    for name in ("fast", "accurate"):
        card = model_card(name)
        assert card["status"] in lines[name] and card["arch"] in lines[name]
        size = (MODELS_DIR / f"{name}.keras").stat().st_size / 1e6
        assert f"{size:.1f} MB" in lines[name]


def test_one_card_in_full_with_its_per_class_table():
    code, heavy, out, _ = probe_cli("models", "fast")
    assert code == EXIT_OK and heavy == []
    card = model_card("fast")
    lines = out.splitlines()
    assert "per class (int8 TFLite" not in out  # fast runs in float since 2026-12-04
    start = lines.index("per class (Keras):") + 2  # after the title and the column heads
    want = [f"  {emotion:<10}{r['precision']:>10.3f}{r['recall']:>8.3f}{r['f1']:>8.3f}{r['support']:>9d}"
            for emotion, r in card["publictest_per_class"].items()]
    assert lines[start:start + 7] == want
    assert "made by:" in out and card["command"].split()[0] in out

    code, _, printed, _ = probe_cli("models", "fast", "--json")
    assert code == EXIT_OK and json.loads(printed) == card


def test_a_model_file_shows_the_card_beside_it_or_says_it_has_none(tmp_path):
    model = tmp_path / "mine.keras"
    shutil.copyfile(MODELS_DIR / "fast.keras", model)
    code, _, out, _ = probe_cli("models", str(model))
    assert code == EXIT_OK and "no card beside this file" in out
    card = {"status": "interim", "arch": "vgg-small", "params": 1767207, "tta": "none",
            "publictest_accuracy": 0.6123, "publictest_accuracy_without_tta": 0.6123, "command": "my own run"}
    model.with_suffix(".json").write_text(json.dumps(card))
    code, _, out, _ = probe_cli("models", str(model))
    assert code == EXIT_OK and "PublicTest  61.23% (float)" in out and "my own run" in out
    # Keras-int8 layers keep a model in Keras even where its card also has int8 TFLite figures (Classifier's auto).
    both = card | {"quantization": "int8 dense kernels", "tflite_quantization": "dynamic-int8",
                   "tflite_publictest_accuracy": 0.6001}
    model.with_suffix(".json").write_text(json.dumps(both))
    code, _, out, _ = probe_cli("models", str(model))
    assert code == EXIT_OK and "PublicTest  61.23% (Keras, int8 kernels)" in out, out
    table = model_card("fast")["publictest_per_class"]
    # A card that asks for int8 TFLite and a second look (the packaged fast's until 2026-12-04): int8's figure and
    # table for a CPU, Keras's for a GPU.
    int8 = card | {"tflite_quantization": "dynamic-int8", "tflite_publictest_accuracy": 0.6001, "flip_margin": 0.03,
                   "publictest_per_class": table, "tflite_publictest_per_class": table}
    model.with_suffix(".json").write_text(json.dumps(int8))
    code, _, out, _ = probe_cli("models", str(model))
    assert code == EXIT_OK, out
    assert "PublicTest  60.01% (CPU: int8 TFLite, second look within 0.03; GPU: 61.23% in Keras)" in out, out
    assert out.splitlines().count("per class (int8 TFLite, as analyze runs it on a CPU):") == 1, out
    # ship_model.py --quantize keeps the float figure's table beside int8's; both are shown, each under its title.
    model.with_suffix(".json").write_text(json.dumps(both | {"publictest_per_class": table,
                                                             "float_publictest_per_class": table}))
    code, _, out, _ = probe_cli("models", str(model))
    lines = out.splitlines()
    assert code == EXIT_OK and lines.count("per class (Keras):") == 1, out
    assert lines.count("per class (float, before its Dense kernels went int8):") == 1, out
    model.with_suffix(".json").write_text(json.dumps(card | {"publictest_per_class": {"angry": {"recall": 0.5}}}))
    code, _, _, err = probe_cli("models", str(model))
    assert code == EXIT_MODEL and f"{str(model.with_suffix('.json'))!r} is not as fer-batch writes it" in err, err
    # A margin analyze would refuse is no "second look within 5" in the list or the card.
    model.with_suffix(".json").write_text(json.dumps(card | {"flip_margin": 5}))
    code, _, _, err = probe_cli("models", str(model))
    assert code == EXIT_MODEL and "flip_margin 5; expected a number in (0, 1]" in err, err


def test_a_runs_model_shows_what_the_run_measured_and_on_which_faces(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(MODELS_DIR / "fast.keras", run / "model.keras")
    val = {"accuracy": 0.5, "n": 12}
    (run / "metrics.json").write_text(json.dumps({"arch": "tiny", "epochs": 1, "tta": "none",
                                                  "splits": {"val": val}}))
    for method, said in (("folders", "the data's val/ folder"), ("usage", "the CSV's PublicTest rows"),
                         ("stratified-80/20", "a seeded, stratified holdout of the data (80/20 train/validation)")):
        (run / "config.json").write_text(json.dumps({"split_method": method}))
        code, _, out, _ = probe_cli("models", str(run / "model.keras"))
        assert code == EXIT_OK and "network     tiny, 1 epoch, test-time views none" in out, out
        assert f"validation  50.00% on 12 faces (without test-time views 50.00%): {said}" in out, out
    # a run on train/ and test/ folders only measured its test split: shown as such, not "nothing measured"
    (run / "metrics.json").write_text(json.dumps({"arch": "tiny", "epochs": 1, "tta": "flip",
                                                  "splits": {"test": val, "test_no_tta": {"accuracy": 0.25}}}))
    code, _, out, _ = probe_cli("models", str(run / "model.keras"))
    assert code == EXIT_OK and ("test        50.00% on 12 faces (without test-time views 25.00%): the data's test "
                                "split") in out, out


def test_a_wrong_name_is_exit_3_and_lists_the_packaged_models(tmp_path):
    code, heavy, _, err = probe_cli("models", "fastest")
    assert code == EXIT_MODEL and heavy == []
    assert "NAME 'fastest' is neither a packaged model (fast, accurate) nor an existing .keras file" in err
    code, _, _, err = probe_cli("models", str(tmp_path / "gone.keras"))
    assert code == EXIT_MODEL and "no such file" in err
    run = tmp_path / "run"
    run.mkdir()
    code, _, _, err = probe_cli("models", str(run))
    assert code == EXIT_MODEL and f"NAME {str(run)!r} is a folder; name a .keras file" in err, err
    shutil.copyfile(MODELS_DIR / "fast.keras", run / "model.keras")
    code, _, _, err = probe_cli("models", str(run))
    assert code == EXIT_MODEL and f"did you mean {str(run / 'model.keras')!r}" in err, err
    (run / "notes.csv").write_text("emotion,pixels\n")
    code, _, _, err = probe_cli("models", str(run / "notes.csv"))
    assert code == EXIT_MODEL and "is not a .keras file" in err, err


def test_a_reader_that_goes_away_ends_it_quietly_with_141():
    """`fer-batch models | head -1`: the closed pipe is exit 141 (128 + SIGPIPE), with nothing on stderr."""
    from fer_batch.cli import EXIT_BROKEN_PIPE

    # Without PYTHONUNBUFFERED, as most shells run it: the short output waits in Python's buffer until the end.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([sys.executable, "-m", "fer_batch", "models", "accurate"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # before the interpreter has started: every write to stdout fails
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == EXIT_BROKEN_PIPE == 141
    assert err == b""
