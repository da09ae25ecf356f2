"""``--resume --retry-failed``: the files an earlier run failed on are analysed again, their old rows and error rows
taken out of the output first; everything else in the output stays byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import synthetic_media as synthetic
from fer_batch.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, main
from fer_batch.sinks import RunWriter, journal_path
from fer_batch.summary import read_timeline

from test_reliability import read_errors, summary_counts


def _analyze(capsys, *args) -> tuple[int, str]:
    code = main(["analyze", *map(str, args), "--quiet"])
    return code, capsys.readouterr().err


@pytest.fixture
def failed_run(tmp_path, one_face_photo, truncated_video, capsys):
    """A folder of four files, two of which fail: an empty photo (no rows) and a truncated video (rows up to the
    cut, then its error)."""
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(one_face_photo, clips / "a_photo.jpg")
    synthetic.write_zero_byte(clips / "b_empty.jpg")
    shutil.copy(truncated_video, clips / "c_cut.mp4")
    synthetic.save_image(clips / "d_group.jpg", synthetic.photo_faces(2, seed=4).rgb)
    out = tmp_path / "r.csv"
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5")
    assert code == EXIT_SOME_FAILED, err
    failed = read_errors(tmp_path / "r.errors.csv")["source"].tolist()
    assert failed == [str(clips / "b_empty.jpg"), str(clips / "c_cut.mp4")]
    assert (read_timeline(out)["source"] == str(clips / "c_cut.mp4")).sum() > 0  # rows before the cut
    return clips, out


def test_fixed_files_are_analysed_again_and_the_rest_is_kept(failed_run, face_video, one_face_photo, capsys):
    clips, out = failed_run
    before = read_timeline(out)
    kept = before[~before["source"].isin([str(clips / "b_empty.jpg"), str(clips / "c_cut.mp4")])]
    shutil.copy(one_face_photo, clips / "b_empty.jpg")  # the user fixes both files
    shutil.copy(face_video.path, clips / "c_cut.mp4")
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed")
    assert code == EXIT_OK, err
    counts = summary_counts(err)
    assert (counts["succeeded"], counts["failed"], counts["retried"], counts["skipped"]) == (2, 0, 2, 2)
    assert "0 failed, 2 skipped (already done), 2 earlier failures retried; " in err
    after = read_timeline(out)
    assert read_errors(out.with_name("r.errors.csv")).empty
    # the kept sources first and unchanged, then the two retried ones, whole this time
    assert after.iloc[:len(kept)].reset_index(drop=True).equals(kept.reset_index(drop=True))
    cut_rows = after[after["source"] == str(clips / "c_cut.mp4")]
    assert cut_rows["frame"].nunique() == -(-face_video.frames // 5)
    assert (after["source"] == str(clips / "b_empty.jpg")).sum() == 1
    # the journal describes the new files: another resume has nothing to do and changes nothing
    snapshot = out.read_bytes()
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed")
    assert code == EXIT_OK and summary_counts(err)["skipped"] == 4 and out.read_bytes() == snapshot


def test_a_file_that_fails_again_keeps_one_error_row(failed_run, capsys):
    clips, out = failed_run
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed")
    assert code == EXIT_SOME_FAILED
    counts = summary_counts(err)
    assert (counts["failed"], counts["retried"], counts["skipped"]) == (2, 2, 2)
    assert sorted(read_errors(out.with_name("r.errors.csv"))["source"]) == [str(clips / "b_empty.jpg"),
                                                                          str(clips / "c_cut.mp4")]


def test_a_failed_file_gone_since_keeps_its_error_row(failed_run, face_video, capsys):
    clips, out = failed_run
    (clips / "b_empty.jpg").unlink()
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed")
    assert code == EXIT_SOME_FAILED  # c_cut.mp4 fails again
    counts = summary_counts(err)
    assert (counts["retried"], counts["skipped"], counts["gone_failed"]) == (1, 2, 1)
    assert str(clips / "b_empty.jpg") in read_errors(out.with_name("r.errors.csv"))["source"].tolist()
    shutil.copy(face_video.path, clips / "c_cut.mp4")  # fixed: the output still holds b_empty.jpg's failure
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed")
    assert code == EXIT_SOME_FAILED and err.rstrip().endswith(
        "0 failed, 2 skipped (already done), 1 earlier failure retried, 1 earlier failure not among the inputs; "
        f"{-(-face_video.frames // 5)} rows written")


def test_retry_failed_needs_resume(tmp_path, one_face_photo, capsys):
    code, err = _analyze(capsys, one_face_photo, "--out", tmp_path / "r.csv", "--retry-failed")
    assert code == EXIT_USAGE and "--retry-failed" in err and "needs --resume" in err
    assert not (tmp_path / "r.csv").exists()


def test_a_retry_cut_short_after_its_commit_point_is_finished_by_the_next_open(failed_run, monkeypatch, tmp_path):
    """A kill between the moves of the rewritten files: the next open completes them -- also one started from
    another folder, naming --out another way -- so the journal always describes its timeline."""
    import os

    import fer_batch.sinks as sinks

    clips, out = failed_run
    errors = out.with_name("r.errors.csv")
    settings = json.loads(journal_path(out).read_text().splitlines()[0])["settings"]
    real_replace, calls = os.replace, []

    def killed_after_the_first_move(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the timeline is moved; the errors file and the journal are still the old ones
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(sinks.os, "replace", killed_after_the_first_move)
    monkeypatch.chdir(out.parent)
    with pytest.raises(KeyboardInterrupt):
        RunWriter(Path("r.csv"), Path("r.errors.csv"), resume=True, settings=settings,
                  retry=frozenset({str(clips / "c_cut.mp4")}))
    monkeypatch.setattr(sinks.os, "replace", real_replace)
    assert out.with_name(".r.csv.journal.commit").exists()
    # what a resume plans from, before it opens the output, is the rewritten journal
    assert [e["source"] for e in sinks.read_journal(out, settings)[1:]] == [
        str(clips / n) for n in ("a_photo.jpg", "b_empty.jpg", "d_group.jpg")]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    w = RunWriter(out, errors, resume=True, settings=settings)  # a plain resume finishes the retry first
    w.close()
    assert sorted(p.name for p in out.parent.iterdir() if ".retry" in p.name or ".commit" in p.name) == []
    assert str(clips / "c_cut.mp4") not in set(read_timeline(out)["source"])
    assert read_errors(errors)["source"].tolist() == [str(clips / "b_empty.jpg")]
    assert list(w.committed) == [str(clips / n) for n in ("a_photo.jpg", "b_empty.jpg", "d_group.jpg")]


def test_a_retry_killed_after_taking_the_failures_out_still_counts_them_as_retried(failed_run, face_video,
                                                                                   one_face_photo, capsys):
    """A --retry-failed run killed once the failures are out of the output, before analysing them again: the next
    resume, with or without --retry-failed, analyses them, and its last line still says they were earlier failures
    retried (it had counted them as new files)."""
    clips, out = failed_run
    settings = json.loads(journal_path(out).read_text().splitlines()[0])["settings"]
    shutil.copy(one_face_photo, clips / "b_empty.jpg")
    shutil.copy(face_video.path, clips / "c_cut.mp4")
    w = RunWriter(out, out.with_name("r.errors.csv"), resume=True, settings=settings,
                  retry=frozenset({str(clips / "b_empty.jpg"), str(clips / "c_cut.mp4")}))
    w.close()  # the kill: nothing analysed again yet
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume")
    assert code == EXIT_OK, err
    counts = summary_counts(err)
    assert (counts["succeeded"], counts["failed"], counts["retried"], counts["skipped"]) == (2, 0, 2, 2), err
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed")
    assert code == EXIT_OK and "retried" not in err and summary_counts(err)["skipped"] == 4, err


def test_a_retry_cut_short_before_its_commit_point_leaves_the_old_output(failed_run, monkeypatch):
    import fer_batch.sinks as sinks

    clips, out = failed_run
    errors = out.with_name("r.errors.csv")
    before = (out.read_bytes(), errors.read_bytes(), journal_path(out).read_bytes())
    settings = json.loads(journal_path(out).read_text().splitlines()[0])["settings"]

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sinks.shutil, "copymode", disk_full)  # after the copies, before the commit point
    with pytest.raises(Exception, match="No space left on device"):
        RunWriter(out, errors, resume=True, settings=settings, retry=frozenset({str(clips / "c_cut.mp4")}))
    assert (out.read_bytes(), errors.read_bytes(), journal_path(out).read_bytes()) == before
    assert sorted(p.name for p in out.parent.iterdir() if ".retry" in p.name or ".commit" in p.name) == []


def test_a_symlinked_out_keeps_its_link(failed_run, capsys):
    clips, out = failed_run
    real = out.with_name("real.csv")
    out.rename(real)
    out.symlink_to(real.name)
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed")
    assert code == EXIT_SOME_FAILED and summary_counts(err)["retried"] == 2
    assert out.is_symlink() and str(clips / "c_cut.mp4") in set(read_timeline(real)["source"])


def test_a_folder_that_refuses_fsync_still_retries(failed_run, monkeypatch, capsys):
    """SMB and some FUSE mounts refuse fsync on a folder (EINVAL): the retry goes on, and leaves no marker that
    would block every later run."""
    import errno
    import os
    import stat

    import fer_batch.sinks as sinks

    real_fsync = os.fsync

    def no_folder_fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(sinks.os, "fsync", no_folder_fsync)
    clips, out = failed_run
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed")
    assert code == EXIT_SOME_FAILED and summary_counts(err)["retried"] == 2, err
    assert not out.with_name(".r.csv.journal.commit").exists()


def test_the_annotated_copy_of_a_retried_file_follows_its_new_rows(failed_run, capsys):
    clips, out = failed_run
    copies = out.parent / "annotated"
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--annotate", copies)
    drawn = sorted(p.name for p in copies.rglob("*.mp4"))
    assert code == EXIT_SOME_FAILED and drawn == ["c_cut.mp4"], err  # drawn from the rows before the cut
    synthetic.write_zero_byte(clips / "c_cut.mp4")  # now it has no rows at all: nothing to draw
    code, err = _analyze(capsys, clips, "--out", out, "--every", "5", "--resume", "--retry-failed",
                         "--annotate", copies)
    assert code == EXIT_SOME_FAILED and summary_counts(err)["retried"] == 2, err
    assert sorted(p.name for p in copies.rglob("*.mp4")) == []
