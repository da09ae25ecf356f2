"""Charts and annotated copies of sources a timeline no longer holds go when that timeline is written again, and
nothing else in their folders does (fer_batch.output_files)."""

from __future__ import annotations

import json
import shutil

from fer_batch.output_files import MANIFEST, record, remove_earlier


def test_only_the_files_recorded_for_the_timeline_are_removed(tmp_path):
    out = tmp_path / "charts"
    out.mkdir()
    mine, kept, other, users = (out / n for n in ("a.mp4.png", "b.mp4.png", "c.mp4.png", "notes.png"))
    for p in (mine, kept, other, users):
        p.write_bytes(b"png")
    record(out, tmp_path / "r.csv", "charts", [mine, kept])
    record(out, tmp_path / "other.csv", "charts", [other])
    record(out, tmp_path / "r.csv", "annotate", [users])  # another kind of output sharing the folder
    assert remove_earlier(out, tmp_path / "r.csv", "charts", keep=[kept]) == [mine]
    assert not mine.exists() and kept.exists() and other.exists() and users.exists()
    # The record keeps what is still there, once each.
    lines = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert sorted(e["file"] for e in lines) == ["b.mp4.png", "c.mp4.png", "notes.png"]
    assert remove_earlier(out, tmp_path / "r.csv", "charts") == [kept] and other.exists() and users.exists()


def test_a_file_written_again_by_another_timeline_or_changed_since_is_not_removed(tmp_path):
    """day1 and day2 share a charts folder and a source: day2's chart replaced day1's under the same name, and a
    later --overwrite of day1 deleted it; nor may a file the user put at a recorded name go."""
    import os

    out = tmp_path / "charts"
    out.mkdir()
    shared, mine = out / "clip.mp4.png", out / "other.mp4.png"
    shared.write_bytes(b"day1")
    mine.write_bytes(b"day1")
    record(out, tmp_path / "day1.csv", "charts", [shared, mine])
    shared.write_bytes(b"day2's chart")
    record(out, tmp_path / "day2.csv", "charts", [shared])
    mine.write_bytes(b"the user's own, saved over it")
    os.utime(mine, ns=(1, 1))
    assert remove_earlier(out, tmp_path / "day1.csv", "charts") == []
    assert shared.read_bytes() == b"day2's chart" and mine.exists()
    assert remove_earlier(out, tmp_path / "day2.csv", "charts") == [shared]


def test_a_record_that_names_a_path_outside_its_folder_or_is_cut_off_removes_nothing_else(tmp_path):
    out = tmp_path / "ann"
    out.mkdir()
    outside = tmp_path / "precious.jpg"
    outside.write_bytes(b"jpg")
    key = f"annotate:{(tmp_path / 'r.csv').resolve()}"
    (out / MANIFEST).write_text(json.dumps({"timeline": key, "file": "../precious.jpg"}) + "\n"
                                + json.dumps({"timeline": key, "file": str(outside)}) + "\n" + '{"timeline": "',
                                encoding="utf-8")
    assert remove_earlier(out, tmp_path / "r.csv", "annotate") == [] and outside.exists()
    assert remove_earlier(tmp_path / "missing", tmp_path / "r.csv", "annotate") == []


def test_overwriting_a_run_with_fewer_inputs_removes_their_charts_and_copies(tmp_path, face_video, one_face_photo,
                                                                           capsys, monkeypatch):
    from fer_batch.cli import EXIT_OK, main

    monkeypatch.chdir(tmp_path)  # charts are named after the paths as given
    inputs, elsewhere = tmp_path / "in", tmp_path / "other"
    inputs.mkdir()
    elsewhere.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(face_video.path, inputs / name)
    shutil.copy(face_video.path, elsewhere / "d.mp4")
    shutil.copy(one_face_photo, inputs / "c.jpg")
    charts, ann = tmp_path / "charts", tmp_path / "ann"
    args = ["--every", "5", "--charts", "charts", "--annotate", "ann", "--quiet"]
    # (the two kinds of output can share a folder: the charts' removal must not take the copies, nor the reverse)
    assert main(["analyze", "in", "--out", "r.csv", *args]) == EXIT_OK
    assert {p.name for p in charts.glob("*.png")} == {"in_a.mp4.png", "in_b.mp4.png", "emotion_distribution.png"}
    assert {p.name for p in ann.rglob("*") if p.is_file() and not p.name.startswith(".")} == {"a.mp4", "b.mp4",
                                                                                          "c.jpg"}
    # Another timeline's chart in the same folder, and a file of the user's: neither is this run's to remove.
    assert main(["analyze", "other", "--out", "other.csv", "--every", "5", "--charts", "charts", "--quiet"]) == EXIT_OK
    (charts / "my_notes.png").write_bytes(b"not a chart")
    capsys.readouterr()
    (inputs / "a.mp4").unlink()
    (inputs / "c.jpg").unlink()
    assert main(["analyze", "in", "--out", "r.csv", *args, "--overwrite"]) == EXIT_OK
    err = capsys.readouterr().err
    assert {p.name for p in charts.glob("*.png")} == {"in_b.mp4.png", "emotion_distribution.png", "my_notes.png",
                                                      "other_d.mp4.png"}
    assert {p.name for p in ann.rglob("*") if p.is_file() and not p.name.startswith(".")} == {"b.mp4"}
    assert "note: removed 3 charts or annotated copies that an earlier run of" in err, err


def test_charts_and_copies_sharing_a_folder_leave_each_other_alone(tmp_path, face_video, one_face_photo, capsys,
                                                                  monkeypatch):
    from fer_batch.cli import EXIT_OK, main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    shutil.copy(face_video.path, tmp_path / "in" / "a.mp4")
    shutil.copy(one_face_photo, tmp_path / "in" / "c.jpg")
    args = ["analyze", "in", "--out", "r.csv", "--every", "5", "--charts", "out", "--annotate", "out", "--quiet"]
    assert main(args) == EXIT_OK
    files = lambda: {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")  # noqa: E731
                     if p.is_file() and not p.name.startswith(".")}
    first = files()
    assert first == {"in_a.mp4.png", "emotion_distribution.png", "in/a.mp4", "in/c.jpg"}
    capsys.readouterr()
    assert main([*args, "--overwrite"]) == EXIT_OK
    assert files() == first and "note: removed" not in capsys.readouterr().err
    assert main([*args[:-1], "--resume"]) == EXIT_OK  # a finished run resumed: charts again, copies kept
    assert files() == first


def test_charts_written_before_a_stop_are_recorded_and_go_with_their_source(tmp_path, face_video, monkeypatch):
    """A run stopped half-way through its charts had recorded none of them, so a later --overwrite without their
    source left them beside its own as if they were its results."""
    import dataclasses
    import threading

    import pytest

    from fer_batch import charts
    from fer_batch.batch import run_batch
    from fer_batch.config import AnalyzeConfig, RunConfig
    from fer_batch.errors import Interrupted

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(face_video.path, inputs / name)
    stop = threading.Event()
    plot = charts.plot_video_timeline

    def plot_then_ctrl_c(*args, **kwargs):  # the real chart, then a Ctrl-C as the CLI's handler gives it
        path = plot(*args, **kwargs)
        stop.set()
        return path

    monkeypatch.setattr(charts, "plot_video_timeline", plot_then_ctrl_c)
    config = RunConfig(paths=(str(inputs),), out=tmp_path / "r.csv", charts=tmp_path / "charts",
                       analyze=AnalyzeConfig(every=5))
    with pytest.raises(Interrupted, match="stopped while writing --charts"):
        run_batch(config, stop=stop)
    (first,) = (tmp_path / "charts").glob("*.mp4.png")
    assert [json.loads(line)["file"] for line in (tmp_path / "charts" / MANIFEST).read_text().splitlines()] == [
        first.name]
    monkeypatch.setattr(charts, "plot_video_timeline", plot)
    gone = "a.mp4" if "a.mp4" in first.name else "b.mp4"
    (inputs / gone).unlink()
    report = run_batch(dataclasses.replace(config, overwrite=True))
    assert report.removed == [first] and not first.exists()
    kept = "b.mp4" if gone == "a.mp4" else "a.mp4"
    assert [p.name.endswith(f"{kept}.png") for p in (tmp_path / "charts").glob("*.mp4.png")] == [True]
