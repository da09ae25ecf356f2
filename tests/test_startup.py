"""The first seconds of a run: everything that needs no model is settled before TensorFlow is imported, a run says
what it is loading, the API refuses a missing path as the CLI does, and --debug logs each file.

Whether TensorFlow was imported is read from ``sys.modules`` in a fresh interpreter, not from a timer, so these
tests do not depend on how loaded the machine is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import synthetic_media as synthetic
from fer_batch.cli import EXIT_DATASET, EXIT_MODEL, EXIT_SOME_FAILED, EXIT_USAGE

from test_reliability import cli_command, read_errors, summary_counts

HEAVY = ("tensorflow", "keras", "mediapipe", "cv2")

CLI_PROBE = """
import json, sys
from fer_batch.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def probe_cli_output(*args: str) -> tuple[int, list[str], str, str]:
    """Run ``fer-batch ARGS`` in a fresh interpreter: (exit code, heavy modules it imported, stdout, stderr)."""
    res = subprocess.run([sys.executable, "-c", CLI_PROBE, *args], capture_output=True, text=True, timeout=300)
    *printed, last = res.stdout.strip().splitlines()
    result = json.loads(last)
    return result["code"], result["heavy"], "\n".join(printed), res.stderr


def probe_cli(*args: str) -> tuple[int, list[str], str]:
    """Run ``fer-batch ARGS`` in a fresh interpreter: (exit code, heavy modules it imported, stderr)."""
    code, heavy, _, err = probe_cli_output(*args)
    return code, heavy, err


def test_missing_path_is_refused_without_tensorflow(tmp_path):
    code, heavy, err = probe_cli("analyze", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "r.csv"))
    assert code == EXIT_USAGE and heavy == []
    assert f"no such file or directory: {str(tmp_path / 'nope.mp4')!r}" in err
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_missing_dataset_is_refused_without_tensorflow(tmp_path, command):
    nope = tmp_path / "nope.csv"
    out = ["--out", str(tmp_path / "run")] if command == "train" else []
    code, heavy, err = probe_cli(command, "--data", str(nope), *out)
    assert code == EXIT_DATASET and heavy == [], err
    assert f"--data {str(nope)!r}: no such file or directory" in err
    assert not (tmp_path / "run").exists()


def test_an_unknown_architecture_is_refused_without_tensorflow(tmp_path):
    faces = tmp_path / "faces.csv"
    faces.write_text("emotion,pixels\n")
    code, heavy, err = probe_cli("train", "--data", str(faces), "--out", str(tmp_path / "run"), "--arch", "vgg-huge")
    assert code == EXIT_USAGE and heavy == [], err
    assert "--arch 'vgg-huge' is not an architecture; choose one of seed, vgg, vgg-m" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", ["--init", "--teacher", "evaluate"])
def test_a_file_that_is_no_model_is_named_by_its_option_before_the_data_is_read(tmp_path, option):
    """A CSV named as --init, or random bytes as --teacher or evaluate's --model: exit 3, naming the option, without
    TensorFlow and before the data (minutes with --faces detect) is read."""
    faces = tmp_path / "faces.csv"
    faces.write_text("emotion,pixels\n")
    if option == "--init":
        bad = faces
    else:
        bad = tmp_path / "teacher.keras"
        bad.write_bytes(bytes(range(256)) * 40)
    if option == "evaluate":
        args = ("evaluate", "--data", str(faces), "--model", str(bad))
    else:
        args = ("train", "--data", str(faces), "--out", str(tmp_path / "run"), option, str(bad))
    code, heavy, err = probe_cli(*args)
    named = "--model" if option == "evaluate" else option
    assert code == EXIT_MODEL and heavy == [], err
    assert f"model error: {named} {str(bad)!r}" in err and "not a .keras file" in err, err
    assert not (tmp_path / "run").exists()


def test_a_named_non_media_file_fails_without_tensorflow(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    out = tmp_path / "r.csv"
    code, heavy, err = probe_cli("analyze", str(notes), "--out", str(out))
    assert code == EXIT_SOME_FAILED and heavy == []
    assert "loading model" not in err  # there is nothing to classify
    assert f"error: {notes}: not a supported image or video file (suffix '.txt'); images: .bmp, " in err  # and what is
    assert "; videos: .avi, " in err
    assert summary_counts(err) == {"succeeded": 0, "failed": 1, "retried": 0, "skipped": 0, "skipped_failed": 0,
                                   "ignored": 0, "rows": 0}
    assert read_errors(tmp_path / "r.errors.csv")["source"].tolist() == [str(notes)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real run (not quiet, --debug) over a one-face photo and a zero-byte one, with a summary."""
    root = tmp_path_factory.mktemp("startup")
    photo = synthetic.save_image(root / "a_face.jpg", synthetic.photo_faces(1, seed=0).rgb)
    broken = synthetic.write_zero_byte(root / "b_broken.jpg")
    out = root / "out" / "results.csv"
    res = subprocess.run(cli_command() + ["analyze", str(photo), str(broken), "--out", str(out), "--summary",
                                          str(root / "out" / "summary.csv"), "--debug"],
                         capture_output=True, text=True, timeout=600)
    return {"res": res, "out": out, "photo": photo, "broken": broken, "root": root}


def test_a_run_first_says_what_it_loads_and_shows_no_native_lines(finished_run):
    res = finished_run["res"]
    assert res.returncode == EXIT_SOME_FAILED, res.stderr[-3000:]
    assert res.stderr.splitlines()[0] == "loading model fast ..."
    # TensorFlow's, absl's and MediaPipe's native lines go to the --debug log, not the terminal
    for native in ("cuda", "cuInit", "absl", "E0000", "W0000", "I0000", "XNNPACK", "Traceback"):
        assert native not in res.stderr, native
    assert summary_counts(res.stderr)["rows"] == 1


def test_debug_log_has_each_file_start_end_and_traceback(finished_run):
    log = (finished_run["out"].with_name("results.debug.log")).read_text(encoding="utf-8")
    photo, broken = finished_run["photo"], finished_run["broken"]
    assert f"start {photo} (image)" in log
    assert f"end {photo}: 1 frames, 1 faces, " in log
    assert f"end {broken}: 0 frames, 0 faces, " in log and "error: empty file (0 bytes)" in log
    after = log[log.index(f"{broken}: empty file (0 bytes)"):]
    assert after.splitlines()[1] == "Traceback (most recent call last):"


def test_a_finished_resume_returns_without_tensorflow(finished_run):
    out = finished_run["out"]
    before = out.read_bytes(), out.with_name("results.errors.csv").read_bytes()
    code, heavy, err = probe_cli("analyze", str(finished_run["photo"]), str(finished_run["broken"]), "--out",
                                 str(out), "--summary", str(out.with_name("summary.csv")), "--resume", "--debug")
    assert heavy == [] and "loading model" not in err
    assert code == EXIT_SOME_FAILED  # the whole output still has a failed file
    assert summary_counts(err) == {"succeeded": 0, "failed": 0, "retried": 0, "skipped": 2, "skipped_failed": 1,
                                   "ignored": 0, "rows": 0}
    assert (out.read_bytes(), out.with_name("results.errors.csv").read_bytes()) == before


def test_api_refuses_a_missing_path_at_the_call_without_tensorflow(tmp_path):
    code = f"""
import json, sys
import fer_batch
from fer_batch.errors import UsageError
from fer_batch.pipeline import analyze_source, stream_source
found = []
for call in (lambda: fer_batch.analyze({str(tmp_path / 'clips')!r}),
             lambda: fer_batch.analyze([{str(tmp_path)!r}, {str(tmp_path / 'x.mp4')!r}]),
             lambda: analyze_source({str(tmp_path / 'x.mp4')!r}),
             lambda: stream_source({str(tmp_path / 'x.mp4')!r})):
    try:
        call()  # raises at the call, before the first record is asked for
        found.append(None)
    except UsageError as exc:
        found.append(str(exc))
print(json.dumps({{"found": found, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["found"] == [f"no such file or directory: {str(tmp_path / 'clips')!r}",
                               f"no such file or directory: {str(tmp_path / 'x.mp4')!r}",
                               f"no such file or directory: {str(tmp_path / 'x.mp4')!r}",
                               f"no such file or directory: {str(tmp_path / 'x.mp4')!r}"]


def test_readme_recipe_keeps_native_lines_off_an_api_users_stderr(tmp_path):
    """README's recipe for API users: with the calls inside ``native_stderr``, nothing reaches stderr, not even
    FFmpeg's complaints about a video cut short or TensorFlow's CUDA registration lines; the records still come."""
    video = synthetic.write_face_video(tmp_path / "whole.mp4", frames=30, fps=10, size=(160, 120), seed=1,
                                       codec="mp4v").path
    data = Path(video).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # mp4v puts its index last: "moov atom not found"
    photo = synthetic.save_image(tmp_path / "face.jpg", synthetic.photo_faces(1, seed=0).rgb)
    code = f"""
import fer_batch
from fer_batch.native import native_stderr

errors = []
with native_stderr():
    records = list(fer_batch.analyze([{str(tmp_path / 'cut.mp4')!r}, {str(photo)!r}], errors=errors))
print(len(records), len(errors))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    faces, failed = map(int, res.stdout.split())
    assert faces >= 2 and failed == 1
    assert res.stderr == ""
