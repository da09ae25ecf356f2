"""Timeline/errors writers: per-source commits, the resume journal, and exact CSV round trips."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fer_batch.errors import UsageError
from fer_batch.records import COLUMNS, FaceRecord, SourceDone
from fer_batch.sinks import RunWriter
from fer_batch.summary import read_timeline

PROBS = (0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1)


def _records(name, n):
    return [FaceRecord(name, "video", i, i / 10, face_id=0, x=1, y=2, w=30, h=30, det_score=0.9, probs=PROBS)
            for i in range(n)]


def _writer(tmp_path, resume=False, settings=None):
    out = tmp_path / "out.csv"
    return RunWriter(out, tmp_path / "out.errors.csv", resume=resume, settings=settings or {"every": 1})


def test_rows_reach_the_timeline_as_they_arrive(tmp_path):
    w = _writer(tmp_path)
    w.write(_records("a.mp4", 3))
    assert len(read_timeline(tmp_path / "out.csv")) == 3  # flushed before the source ends
    assert "a.mp4" not in w.committed
    w.commit(SourceDone("a.mp4", "video", 3, 3))
    w.commit(SourceDone("bad.jpg", "image", 0, 0, error="empty file (0 bytes)"))
    w.close()
    df = read_timeline(tmp_path / "out.csv")
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 3 and (df["source"] == "a.mp4").all()
    errors = pd.read_csv(tmp_path / "out.errors.csv")
    assert errors.to_dict("records") == [{"source": "bad.jpg", "error": "empty file (0 bytes)"}]


def test_sources_decoded_side_by_side_stay_contiguous(tmp_path):
    """With several workers rows of two sources interleave; the second waits in staging for the first to end."""
    w = _writer(tmp_path)
    a, b = _records("a.mp4", 4), _records("b.mp4", 3)
    w.write([a[0], b[0], a[1]])
    w.write([b[1], b[2]])
    w.commit(SourceDone("b.mp4", "video", 3, 3))  # b finishes first
    assert "b.mp4" not in w.committed
    assert read_timeline(tmp_path / "out.csv")["source"].tolist() == ["a.mp4"] * 2
    w.write(a[2:])
    w.commit(SourceDone("a.mp4", "video", 4, 4))
    w.close()
    df = read_timeline(tmp_path / "out.csv")
    assert df["source"].tolist() == ["a.mp4"] * 4 + ["b.mp4"] * 3
    assert df["frame"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert list(w.committed) == ["a.mp4", "b.mp4"]


def test_resume_drops_a_source_cut_off_mid_way_and_skips_committed_ones(tmp_path):
    w = _writer(tmp_path)
    w.write(_records("a.mp4", 4))
    w.commit(SourceDone("a.mp4", "video", 4, 4))
    w.write(_records("b.mp4", 2))  # streamed into the timeline, never committed: the run is killed here (no close)
    w._lock.close()  # as the kernel drops a killed process's lock
    assert read_timeline(tmp_path / "out.csv")["source"].tolist() == ["a.mp4"] * 4 + ["b.mp4"] * 2
    with open(tmp_path / "out.csv", "a") as f:
        f.write("b.mp4,video,2,0.2,0,1,2,30,30,0.9,0.1,0.05")  # and a row cut short by the kill
    with open(tmp_path / ".out.csv.journal", "a") as j:
        j.write('{"source": "b.mp4", "tor')  # a torn journal line
    w2 = _writer(tmp_path, resume=True)
    assert set(w2.committed) == {"a.mp4"}
    assert read_timeline(tmp_path / "out.csv")["source"].tolist() == ["a.mp4"] * 4
    w2.write(_records("b.mp4", 2))
    w2.commit(SourceDone("b.mp4", "video", 2, 2))
    w2.close()
    df = read_timeline(tmp_path / "out.csv")
    assert df.groupby("source").size().to_dict() == {"a.mp4": 4, "b.mp4": 2}


def test_close_keeps_whole_sources_only_and_rows_counts_them(tmp_path):
    """An interrupted run closes its writer: rows of sources that never ended are dropped, from the timeline and
    from staging, and ``rows`` is what the timeline gained. A source that finished while another was streaming
    waits for it, and is not committed (nor counted) when the run stops first."""
    w = _writer(tmp_path)
    w.write(_records("a.mp4", 4))
    assert w.commit(SourceDone("a.mp4", "video", 4, 4)) == [SourceDone("a.mp4", "video", 4, 4)]
    c, b = _records("c.mp4", 5), _records("b.mp4", 3)
    w.write([c[0], b[0], c[1], b[1], b[2]])  # c streams into the timeline, b is staged
    assert w.commit(SourceDone("b.mp4", "video", 3, 3)) == []  # finished, waiting for c
    assert w.rows_committed == 4
    w.close()  # interrupted before c ended
    assert read_timeline(tmp_path / "out.csv")["source"].tolist() == ["a.mp4"] * 4
    assert list(w.committed) == ["a.mp4"] and not (tmp_path / ".out.csv.parts").exists()
    w2 = _writer(tmp_path, resume=True)
    assert set(w2.committed) == {"a.mp4"} and w2.rows_committed == 0
    w2.write(b)
    assert w2.commit(SourceDone("b.mp4", "video", 3, 3)) == [SourceDone("b.mp4", "video", 3, 3)]
    w2.close()
    assert w2.rows_committed == 3 and len(read_timeline(tmp_path / "out.csv")) == 7


def test_resume_refuses_different_options(tmp_path):
    _writer(tmp_path, settings={"every": 1}).close()
    with pytest.raises(UsageError, match="every"):
        _writer(tmp_path, resume=True, settings={"every": 5})


def test_resume_without_journal_is_refused(tmp_path):
    (tmp_path / "out.csv").write_text("x\n")
    with pytest.raises(UsageError, match="no journal"):
        _writer(tmp_path, resume=True)


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00") | st.sampled_from(
        [",", '"', "\n", "\r", " ", "'", "é", "日", "本"]),
    min_size=1, max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_any_source_name_round_trips_through_pandas_exactly(tmp_path, name):
    d = tmp_path / "rt"
    d.mkdir(exist_ok=True)
    w = RunWriter(d / "o.csv", d / "o.errors.csv", resume=False, settings={})
    w.write([FaceRecord(name, "image", 0, None, face_id=0, x=1, y=2, w=3, h=4, det_score=0.5, probs=PROBS),
             FaceRecord(name, "image", 1, None)])
    w.commit(SourceDone(name, "image", 1, 1, error=f"odd: {name}"))
    w.close()
    df = read_timeline(d / "o.csv")
    assert df["source"].tolist() == [name, name]
    assert pd.isna(df["face_id"].iloc[1]) and df["face_id"].iloc[0] == 0
    err = pd.read_csv(d / "o.errors.csv", dtype=str, keep_default_na=False)
    assert err["source"].tolist() == [name] and err["error"].tolist() == [f"odd: {name}"]


def test_committed_rows_read_back_per_source(tmp_path):
    """What the annotator reads after a commit: exactly a source's records, in order, whichever way its rows reached
    the timeline (streamed or staged), for odd names too, and again after a resume reopens the file."""
    w = _writer(tmp_path)
    odd = 'cr\rlf\nco,ma "q".mp4'
    a = _records("a.mp4", 4)
    b = _records(odd, 3) + [FaceRecord(odd, "video", 3, 0.3)]
    w.write([a[0], b[0], a[1], b[1]])
    w.write([b[2], b[3], a[2], a[3]])
    w.commit(SourceDone(odd, "video", 4, 3))  # staged: waits for a.mp4
    assert w.committed_since() == []
    w.commit(SourceDone("a.mp4", "video", 4, 4))
    assert w.committed_since() == ["a.mp4", odd]
    assert list(w.rows("a.mp4")) == a and list(w.rows(odd)) == b
    w.close()
    again = _writer(tmp_path, resume=True)
    assert list(again.rows(odd)) == b and list(again.rows("a.mp4")) == a
    again.close()


def test_a_refused_resume_names_each_option_with_both_values():
    """What `--resume` says when the journal's settings differ: options as typed, with the earlier and the new
    value, and not the settings that merely follow from them (a new --model has another checksum)."""
    from fer_batch.sinks import _differences

    before = {"paths": ["clips"], "every": 1, "fps": None, "model": "/m/fast.keras", "model_sha256": "a",
              "tflite_quantization": "int8", "flip_margin": 0.03, "detector": "auto", "auto_detector": {"tile": 320},
              "runtime": "auto", "tflite_near_tie": 0.01}
    now = before | {"paths": ["clips", "more"], "model": "/m/accurate.keras", "model_sha256": "b",
                    "tflite_quantization": None}
    now.pop("flip_margin")
    assert _differences(before, now) == ("the earlier run differs: --model was /m/fast.keras, now "
                                         "/m/accurate.keras; PATH was clips, now clips more")
    short = before | {"detector": "short", "every": 2, "fps": None}
    short.pop("auto_detector")
    assert _differences(before, short) == ("the earlier run differs: --detector was auto (the default), now short; "
                                           "--every was 1 (the default), now 2")
    # A resume that typed only --fps after a run with --every 2: --every differs too, at its default, and --fps is
    # shown as typed (10, not 10.0).
    assert _differences(short, short | {"every": 1, "fps": 10.0}) == (
        "the earlier run differs: --every was 2, now 1 (the default); --fps was not given, now 10")
    card = before | {"flip_margin": 0.05}
    assert _differences(before, card) == ("the earlier run differs: the model's card now asks for another way to "
                                          "run it (flip_margin)")
    newer = before | {"auto_detector": {"tile": 256}}
    assert _differences(before, newer) == ("the earlier run differs: this version of fer-batch runs differently "
                                           "from the one that wrote it (auto_detector)")


def test_the_lock_is_held_until_the_summary_charts_and_report_are_written(tmp_path):
    """A second run writing the same --out while the first made its summary from the timeline had rewritten it under
    it: the first run's report then showed the second run's files."""
    from fer_batch.batch import run_batch
    from fer_batch.config import RunConfig
    from fer_batch.sinks import take_lock

    note = tmp_path / "note.txt"  # a named non-media file: the run needs no model
    note.write_text("hi\n")
    out = tmp_path / "run" / "out.csv"
    refused = []

    class Writing:
        def writing(self, option):
            with pytest.raises(UsageError, match="is being written by another fer-batch run") as info:
                take_lock(out)
            refused.append((option, str(info.value)))

    config = RunConfig(paths=(str(note),), out=out, summary=tmp_path / "run" / "summary.csv",
                       report=tmp_path / "run" / "report.html")
    report = run_batch(config, progress=Writing())
    assert [option for option, _ in refused] == ["--summary", "--report"] and report.failed == 1
    take_lock(out).close()  # released at the end


def test_a_commit_whose_journal_line_fails_is_not_counted_and_its_rows_are_dropped(tmp_path):
    """The counters moved before the journal line was on disk: a full disk there left rows and an error row of an
    uncommitted file in the outputs, counted in the run's last line."""
    from fer_batch.errors import OutputError
    from fer_batch.sinks import journal_path

    w = _writer(tmp_path)
    w.write(_records("a.mp4", 3))
    w.commit(SourceDone("a.mp4", "video", 3, 3))
    sizes = (tmp_path / "out.csv").stat().st_size, (tmp_path / "out.errors.csv").stat().st_size
    journal = journal_path(tmp_path / "out.csv")
    kept = journal.read_bytes()
    journal.unlink()
    journal.mkdir()  # appending to it fails as a full disk would
    w.write(_records("b.mp4", 2))
    with pytest.raises(OutputError):
        w.commit(SourceDone("b.mp4", "video", 2, 2, error="cut short"))
    assert w.rows_committed == 3 and "b.mp4" not in w.committed
    w.close()
    assert ((tmp_path / "out.csv").stat().st_size, (tmp_path / "out.errors.csv").stat().st_size) == sizes
    journal.rmdir()
    journal.write_bytes(kept)
    w = _writer(tmp_path, resume=True)
    assert set(w.committed) == {"a.mp4"}
    w.close()


def test_an_errors_file_of_its_header_only_may_be_gone_on_resume_one_with_errors_may_not(tmp_path):
    w = _writer(tmp_path)
    w.write(_records("a.mp4", 3))
    w.commit(SourceDone("a.mp4", "video", 3, 3))
    w.close()
    errors = tmp_path / "out.errors.csv"
    errors.unlink()
    w = _writer(tmp_path, resume=True)
    assert set(w.committed) == {"a.mp4"} and errors.read_bytes() == b"source,error\r\n"
    w.commit(SourceDone("bad.jpg", "image", 0, 0, error="empty file (0 bytes)"))
    w.close()
    held = errors.stat().st_size
    errors.unlink()
    with pytest.raises(UsageError, match=f"--resume: {errors} is missing \\(it held {held} bytes\\); put it back"):
        _writer(tmp_path, resume=True)


def test_a_resume_whose_errors_file_is_gone_is_refused_when_planned_before_any_model_loads(tmp_path):
    from fer_batch.batch import plan_run, run_batch
    from fer_batch.config import RunConfig

    note = tmp_path / "note.txt"  # a named non-media file: an error row, and no model needed
    note.write_text("hi\n")
    out = tmp_path / "out.csv"
    run_batch(RunConfig(paths=(str(note),), out=out))
    errors = tmp_path / "out.errors.csv"
    errors.unlink()
    with pytest.raises(UsageError, match=f"--resume: {errors} is missing"):
        plan_run(RunConfig(paths=(str(note),), out=out, resume=True))


def test_an_overwrite_removes_a_journal_rewrite_a_kill_left(tmp_path):
    from fer_batch.sinks import journal_path

    part = journal_path(tmp_path / "out.csv").with_name(".out.csv.journal.part")
    part.write_text('{"version": 1}\n')
    _writer(tmp_path).close()
    assert not part.exists()


@pytest.mark.parametrize(("score", "accepted"), [(0.3, True), (0.5, True), (0.6, False)])
def test_a_min_score_below_the_bar_of_auto_changes_nothing_on_resume(tmp_path, score, accepted):
    """The run says --min-score 0.3 changes nothing with --detector auto: a resume with it was refused all the
    same."""
    _writer(tmp_path, settings={"detector": "auto", "min_score": 0.5}).close()
    if accepted:
        _writer(tmp_path, resume=True, settings={"detector": "auto", "min_score": score}).close()
    else:
        with pytest.raises(UsageError, match=r"--min-score was 0.5 \(the default\), now 0.6"):
            _writer(tmp_path, resume=True, settings={"detector": "auto", "min_score": score})
    _writer(tmp_path, settings={"detector": "short", "min_score": 0.5}).close()
    with pytest.raises(UsageError, match=r"--min-score was 0.5 \(the default\), now 0.3"):
        _writer(tmp_path, resume=True, settings={"detector": "short", "min_score": 0.3})


def test_a_refused_resume_shows_the_paths_as_typed():
    """Compared without a folder's trailing slash (the same files), shown with it, as the user typed them."""
    from fer_batch.sinks import _differences

    said = _differences({"paths": ["clips/"], "every": 1}, {"paths": ["clips/", "more/"], "every": 1})
    assert said == "the earlier run differs: PATH was clips/, now clips/ more/"
