"""Issue 5, crash safety: a ``fer-batch analyze`` killed with SIGKILL (or interrupted with Ctrl-C) and rerun with
``--resume`` writes exactly the timeline and errors CSVs of an uninterrupted run: same rows, same order, no
duplicates, nothing missing.

How the kill points are reached: a real subprocess runs over five files (a 450-frame video, a zero-byte photo, a
photo, a 150-frame video, a 750-frame video) while the test polls what ``RunWriter`` keeps on disk (see sinks.py):
the journal ``.OUT.journal`` (one JSON line per committed source, with the timeline's size at that commit) and the
timeline itself, which grows past the journalled size as the current source's rows stream in (every 256 rows). When the wanted state shows, the process is frozen with SIGSTOP,
the state is read again (so what is asserted is the state at the kill, not a moment before), and it is killed with
SIGKILL; if the state moved on meanwhile it is resumed with SIGCONT and polling goes on.

* during the first file: no source committed, and rows of the first video already in the timeline;
* between files: 1 to 4 sources committed, the timeline exactly as long as the journal says;
* during the last file: 4 sources committed and rows of the last video already in the timeline.

Each kill point is tried TRIALS times (``FER_RESUME_TRIALS``, default 2), plus one chain that kills the same run at
all three points in turn, resuming each time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

import synthetic_media as synthetic
from fer_batch.cli import EXIT_INTERRUPTED, EXIT_SOME_FAILED
from fer_batch.records import COLUMNS
from fer_batch.summary import read_timeline

from test_reliability import cli_command, read_errors, summary_counts

pytestmark = pytest.mark.slow  # every test runs the CLI two to five times (~15 s of start-up each)

TRIALS = int(os.environ.get("FER_RESUME_TRIALS", "2"))
# At batch size 32, oneDNN rounds the last float32 bit of some faces differently by their position in a batch
# (tests/test_classify.py); a resumed run must put every face where the uninterrupted run had it to match bytes.
BATCH = ("--batch-size", "32")
FILES = ("a_first.mp4", "b_broken.jpg", "c_photo.jpg", "d_middle.mp4", "e_last.mp4")
N = len(FILES)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume_media")
    synthetic.write_face_video(root / "a_first.mp4", frames=450, fps=20, size=(160, 120), seed=1)
    synthetic.write_zero_byte(root / "b_broken.jpg")
    synthetic.save_image(root / "c_photo.jpg", synthetic.photo_faces(2, seed=4).rgb)
    synthetic.write_face_video(root / "d_middle.mp4", frames=150, fps=20, size=(160, 120), seed=2)
    # Rows reach the timeline once 256 have been classified, and classification runs every 256 frames or crops
    # *across* files: in a resumed run the last video may only get its first rows after ~512 of its frames.
    synthetic.write_face_video(root / "e_last.mp4", frames=750, fps=20, size=(160, 120), seed=3)
    assert sorted(p.name for p in root.iterdir()) == list(FILES)
    return root


def _run(media: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command() + ["analyze", str(media), "--out", str(out), "--quiet", *BATCH, *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(media, tmp_path_factory):
    """An uninterrupted run: its timeline and errors CSVs are what every resumed run must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "ref.csv"
    res = _run(media, out)
    assert res.returncode == EXIT_SOME_FAILED, res.stderr[-2000:]
    timeline = read_timeline(out)
    errors = read_errors(out.with_name("ref.errors.csv"))
    # Sanity of the reference itself: sources in order, whole files, the broken one only in errors.
    assert list(dict.fromkeys(timeline["source"])) == [str(media / f) for f in FILES if f != "b_broken.jpg"]
    assert errors["source"].tolist() == [str(media / "b_broken.jpg")]
    assert timeline[timeline["source"] == str(media / "a_first.mp4")]["frame"].nunique() == 450
    assert timeline["face_id"].notna().sum() > 500
    return {"timeline": timeline, "errors": errors,
            "out_bytes": out.read_bytes(), "errors_bytes": out.with_name("ref.errors.csv").read_bytes()}


# ----------------------------------------------------------------------------------------------------------------
# Watching RunWriter's files, and killing at a chosen state
# ----------------------------------------------------------------------------------------------------------------


def disk_state(out: Path) -> dict:
    """What a run has made durable so far: committed sources (journal), staged part files, timeline size."""
    journal = out.with_name(f".{out.name}.journal")
    parts_dir = out.with_name(f".{out.name}.parts")
    entries = []
    try:
        for line in journal.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break  # torn last line: not committed
    except FileNotFoundError:
        pass
    parts = []
    try:
        for p in parts_dir.iterdir():
            try:
                parts.append(p.stat().st_size)
            except FileNotFoundError:
                pass
    except FileNotFoundError:
        pass
    try:
        out_size = out.stat().st_size
    except FileNotFoundError:
        out_size = None
    committed = [e["source"] for e in entries[1:]]
    journal_out_size = entries[-1]["out_size"] if entries else None
    streamed = out_size - journal_out_size if entries and out_size is not None else 0
    return {"started": bool(entries), "committed": committed, "staged_bytes": sum(parts),
            "uncommitted_bytes": streamed + sum(parts), "out_size": out_size, "journal_out_size": journal_out_size}


def _clean(state) -> bool:
    """No commit half-done: the timeline is exactly as long as the journal's last entry says."""
    return state["started"] and state["out_size"] == state["journal_out_size"]


KILL_POINTS = {
    "during_first_file": lambda s: s["started"] and not s["committed"] and s["uncommitted_bytes"] > 0,
    "between_files": lambda s: _clean(s) and 1 <= len(s["committed"]) <= N - 1 and s["staged_bytes"] == 0,
    "during_last_file": lambda s: s["started"] and len(s["committed"]) == N - 1 and s["uncommitted_bytes"] > 0,
}
#: Reached only with --workers 2: rows of a file decoded beside the streaming one wait in staging (that file may
#: have ended). Not among KILL_POINTS, whose runs use one worker.
STAGED = {"staged": lambda s: s["started"] and s["staged_bytes"] > 0}


def _all_stopped(pid: int, timeout: float = 2.0) -> bool:
    """Wait until every thread of ``pid`` is in the stopped state (SIGSTOP is delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                try:
                    states.append(task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0])
                except (FileNotFoundError, ProcessLookupError):
                    continue
        except FileNotFoundError:
            return False
        if states and all(s in "tT" for s in states):
            return True
        time.sleep(0.002)
    return False


def kill_at(media: Path, out: Path, point: str, *extra: str, sig=signal.SIGKILL) -> tuple[dict, int, str]:
    """Run the CLI and send ``sig`` when the disk shows ``point``; returns (state at the signal, exit code, stderr)."""
    condition = {**KILL_POINTS, **STAGED}[point]
    err_path = out.with_name(out.name + f".{point}.stderr")
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cli_command() + ["analyze", str(media), "--out", str(out), "--quiet", *BATCH,
                                                 *extra], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if condition(disk_state(out)):
                os.kill(proc.pid, signal.SIGSTOP)
                frozen = _all_stopped(proc.pid)
                state = disk_state(out)
                if frozen and condition(state):
                    os.kill(proc.pid, sig)
                    if sig != signal.SIGKILL:
                        os.kill(proc.pid, signal.SIGCONT)  # let it handle the signal
                    code = proc.wait(timeout=120)
                    return state, code, err_path.read_text()
                os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.005)
        pytest.fail(f"kill point {point!r} was never reached (exit code {proc.poll()}, last state "
                    f"{disk_state(out)}):\n{err_path.read_text()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_matches_reference(out: Path, reference) -> None:
    timeline = read_timeline(out)
    assert list(timeline.columns) == list(COLUMNS)
    assert not timeline.duplicated(subset=["source", "frame", "face_id"]).any()
    # Byte for byte: the classifier runs fixed-shape batches, so the faces batched with a face never change its
    # result, and the pipeline puts the run's i-th face at position i % batch even in a resumed run, so the
    # position-dependent rounding seen at batch size 32 (tests/test_classify.py) cannot differ either.
    assert out.read_bytes() == reference["out_bytes"]
    pd.testing.assert_frame_equal(timeline, reference["timeline"], check_exact=True)
    pd.testing.assert_frame_equal(read_errors(out.with_name(out.stem + ".errors.csv")), reference["errors"])
    assert out.with_name(out.stem + ".errors.csv").read_bytes() == reference["errors_bytes"]
    assert not out.with_name(f".{out.name}.parts").exists()


def assert_state_is_a_prefix_of_reference(out: Path, state: dict, media: Path, reference) -> None:
    """At the kill, the timeline was the reference's first bytes (rows of the file being written too, the last one
    possibly cut short), and up to the journalled size it held exactly the committed sources' rows."""
    assert state["committed"] == [str(media / f) for f in FILES[:len(state["committed"])]]
    assert out.stat().st_size == state["out_size"]
    data = out.read_bytes()
    assert data == reference["out_bytes"][: len(data)]
    prefix = out.with_name("committed_prefix.csv")
    prefix.write_bytes(data[: state["journal_out_size"]])
    killed, ref = read_timeline(prefix), reference["timeline"]
    assert killed["source"].tolist() == ref[ref["source"].isin(state["committed"])]["source"].tolist()


# ----------------------------------------------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("trial", range(TRIALS))
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, media, reference, point, trial):
    out = tmp_path / "res.csv"
    state, code, _ = kill_at(media, out, point)
    assert code == -signal.SIGKILL
    assert KILL_POINTS[point](state)
    assert_state_is_a_prefix_of_reference(out, state, media, reference)
    if point == "during_first_file":
        assert state["journal_out_size"] < state["out_size"]  # rows of the file being analysed were readable
    res = _run(media, out, "--resume")
    assert "Traceback" not in res.stderr
    counts = summary_counts(res.stderr)
    done_before = len(state["committed"])
    assert counts["skipped"] == done_before
    assert counts["succeeded"] + counts["failed"] + counts["skipped"] == N
    broken_before = str(media / "b_broken.jpg") in state["committed"]
    assert counts["skipped_failed"] == int(broken_before) and counts["failed"] == int(not broken_before)
    # The whole output has a failed file, whichever run analysed it: exit code 1 either way.
    assert res.returncode == EXIT_SOME_FAILED, res.stderr[-2000:]
    assert_matches_reference(out, reference)


def test_chain_of_kills_each_resumed(tmp_path, media, reference):
    """One output killed at all three points in turn (a resumed run killed again), then finished with --resume."""
    out = tmp_path / "res.csv"
    seen = []
    for i, point in enumerate(KILL_POINTS):
        state, code, stderr = kill_at(media, out, point, *(["--resume"] if i else []))
        assert code == -signal.SIGKILL and "Traceback" not in stderr
        assert_state_is_a_prefix_of_reference(out, state, media, reference)
        seen.append(len(state["committed"]))
    assert seen[0] == 0 and seen[-1] == N - 1 and seen == sorted(seen)
    res = _run(media, out, "--resume")
    assert res.returncode == EXIT_SOME_FAILED, res.stderr[-2000:]
    assert summary_counts(res.stderr)["skipped"] == N - 1
    assert_matches_reference(out, reference)
    # Resuming a finished run does nothing and changes nothing.
    res = _run(media, out, "--resume")
    assert res.returncode == EXIT_SOME_FAILED
    counts = summary_counts(res.stderr)
    assert (counts["succeeded"], counts["failed"], counts["skipped"], counts["skipped_failed"]) == (0, 0, N, 1)
    assert_matches_reference(out, reference)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_exits_130_then_resume_equals_uninterrupted_run(tmp_path, media, reference, sig):
    """Ctrl-C, or the SIGTERM a job scheduler or `timeout` sends: the run stops at its next frame, says so, and
    leaves files a resume continues."""
    out = tmp_path / "res.csv"
    state, code, stderr = kill_at(media, out, "during_first_file", sig=sig)
    assert code == EXIT_INTERRUPTED, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert "continue with --resume" in stderr
    # the last line is the run's summary, as in every run: here nothing had finished yet
    last = stderr.strip().splitlines()[-1]
    assert last == "fer-batch: sources: 0 succeeded, 0 failed, 0 skipped (already done); 0 rows written", last
    # The rows of the file cut off are dropped at once (a resumed run would drop them): only the header is left.
    data = out.read_bytes()
    assert state["journal_out_size"] == len(data) and data == reference["out_bytes"][: len(data)]
    res = _run(media, out, "--resume")
    assert res.returncode == EXIT_SOME_FAILED, res.stderr[-2000:]
    assert_matches_reference(out, reference)


def test_resume_with_different_options_is_refused(tmp_path, media, reference):
    out = tmp_path / "res.csv"
    kill_at(media, out, "between_files")
    before = out.read_bytes()
    res = _run(media, out, "--resume", "--every", "2")
    assert res.returncode == 2 and "the earlier run differs: --every was 1 (the default), now 2;" in res.stderr, \
        res.stderr
    assert out.read_bytes() == before
    res = _run(media, out, "--resume", "--detector", "short")  # the run used the default, auto
    assert res.returncode == 2 and "--detector was auto (the default), now short;" in res.stderr, res.stderr
    assert out.read_bytes() == before
    res = _run(media, out, "--resume")
    assert_matches_reference(out, reference)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_interrupted_run_counts_what_the_files_hold(tmp_path, media, reference, workers):
    """After Ctrl-C the last line's counts are those of the files: rows in the timeline, committed sources in the
    journal. With two workers a finished file may still wait for the one streaming into the timeline: it is not
    counted, and --resume redoes it."""
    out = tmp_path / "res.csv"
    point = "during_last_file" if workers == "1" else "staged"
    state, code, stderr = kill_at(media, out, point, "--workers", workers, sig=signal.SIGINT)
    assert code == EXIT_INTERRUPTED, stderr[-2000:]
    counts = summary_counts(stderr)
    journal = [json.loads(line) for line in out.with_name(f".{out.name}.journal").read_text().splitlines()[1:]]
    assert counts["rows"] == len(read_timeline(out))
    assert counts["rows"] > 0 or workers == "2"  # with two, the first video may not have ended yet
    assert counts["succeeded"] + counts["failed"] == len(journal)
    failed_rows = len(read_errors(out.with_name("res.errors.csv")))
    assert counts["failed"] == failed_rows == sum(bool(e["error"]) for e in journal)
    header = json.loads(out.with_name(f".{out.name}.journal").read_text().splitlines()[0])
    # whole files only (with two workers the stop may come before the first file is committed: the header alone)
    assert out.stat().st_size == (journal[-1] if journal else header)["out_size"]
    res = _run(media, out, "--resume", "--workers", workers)
    assert res.returncode == EXIT_SOME_FAILED, res.stderr[-2000:]
    resumed = summary_counts(res.stderr)
    assert resumed["skipped"] == len(journal) and resumed["succeeded"] + resumed["failed"] == N - len(journal)
    assert counts["rows"] + resumed["rows"] == len(reference["timeline"]) == len(read_timeline(out))
    if workers == "1":
        assert_matches_reference(out, reference)


def test_a_resume_after_the_model_file_changed_is_refused(tmp_path, one_face_photo, no_face_photo, capsys):
    """The journal knows the model by its content, not its path and size: a model file replaced by another network
    (as a new packaged fast is, at exactly the old size) cannot continue a run the old one started."""
    from fer_batch.classify import load_keras_model, resolve_model
    from fer_batch.cli import EXIT_USAGE, main

    mine = tmp_path / "mine.keras"
    shutil.copy(resolve_model("fast"), mine)
    out = tmp_path / "r.csv"
    args = ["analyze", str(one_face_photo), str(no_face_photo), "--out", str(out), "--model", str(mine)]
    assert main(args) == 0
    model = load_keras_model(mine)
    last = model.layers[-1]
    last.set_weights([w * 1.01 for w in last.get_weights()])
    model.save(mine)
    capsys.readouterr()
    assert main([*args, "--resume"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "the earlier run differs: the model file is not the network the run started with" in err, err


def test_a_resume_after_the_card_added_a_second_look_is_refused(tmp_path, one_face_photo, no_face_photo, capsys):
    """The same model file whose card now asks for a second, mirrored look at unsure faces gives other
    probabilities: the journal names flip_margin as what changed."""
    from fer_batch.classify import resolve_model
    from fer_batch.cli import EXIT_USAGE, main

    mine = tmp_path / "mine.keras"
    shutil.copy(resolve_model("fast"), mine)
    out = tmp_path / "r.csv"
    args = ["analyze", str(one_face_photo), str(no_face_photo), "--out", str(out), "--model", str(mine)]
    assert main(args) == 0
    mine.with_suffix(".json").write_text(json.dumps({"flip_margin": 0.05}))
    capsys.readouterr()
    assert main([*args, "--resume"]) == EXIT_USAGE
    assert "the model's card now asks for another way to run it (flip_margin)" in capsys.readouterr().err


def test_resume_without_an_earlier_output_says_it_starts_a_new_run(tmp_path, one_face_photo, capsys):
    from fer_batch.cli import main

    out = tmp_path / "typo" / "r.csv"
    assert main(["analyze", str(one_face_photo), "--out", str(out), "--resume", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"note: --resume: no earlier output at {out}; starting a new run" in err
    assert len(read_timeline(out)) == 1
    assert main(["analyze", str(one_face_photo), "--out", str(out), "--resume", "--quiet"]) == 0
    assert "no earlier output" not in capsys.readouterr().err  # now there is one


def test_a_folder_with_a_trailing_slash_resumes_the_run_given_without_one(tmp_path, one_face_photo, capsys):
    """Tab completion types `clips/`: the same files under the same names, so the same run."""
    from fer_batch.cli import main

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(one_face_photo, clips / "a.jpg")
    out = tmp_path / "r.csv"
    assert main(["analyze", str(clips), "--out", str(out), "--quiet"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["analyze", f"{clips}/", "--out", str(out), "--resume", "--quiet"]) == 0
    assert "1 skipped (already done)" in capsys.readouterr().err
    assert out.read_bytes() == before
    capsys.readouterr()
    from fer_batch.cli import EXIT_USAGE

    assert main(["analyze", str(clips / "a.jpg"), "--out", str(out), "--resume", "--quiet"]) == EXIT_USAGE
    assert "the earlier run differs" in capsys.readouterr().err  # one file is not the folder the run was given


def test_a_resume_over_a_timeline_cut_short_since_is_refused_and_pads_nothing(tmp_path, one_face_photo,
                                                                                no_face_photo, capsys):
    """A timeline shorter than its journal says (a copy stopped early): truncating it to the journal's size had
    padded it with NUL bytes and counted the files whose rows were cut as done."""
    from fer_batch.cli import EXIT_USAGE, main

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(one_face_photo, clips / "a.jpg")
    shutil.copy(no_face_photo, clips / "b.jpg")
    out = tmp_path / "r.csv"
    assert main(["analyze", str(clips), "--out", str(out), "--quiet"]) == 0
    cut = out.read_bytes()[: out.stat().st_size // 2]
    out.write_bytes(cut)
    capsys.readouterr()
    assert main(["analyze", str(clips), "--out", str(out), "--resume", "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--resume: {out} holds {len(cut):,} bytes, fewer than the" in err and "--overwrite" in err
    assert out.read_bytes() == cut


def test_sigterm_while_the_model_loads_ends_as_ctrl_c_does(tmp_path, one_face_photo):
    """A scheduler's SIGTERM during the seconds the model loads ended the run with the kernel's 143 and no word;
    README promises 130 for SIGTERM as for Ctrl-C."""
    proc = subprocess.Popen(cli_command() + ["analyze", str(one_face_photo), "--out", str(tmp_path / "r.csv")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert first.startswith("loading model"), first
        os.kill(proc.pid, signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == EXIT_INTERRUPTED, first + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted" in rest or "stopped before finishing" in rest, rest
