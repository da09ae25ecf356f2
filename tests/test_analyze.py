"""End-to-end analysis on generated media: the Python API and the CLI, with real detection and classification."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fer_batch.cli import EXIT_MODEL, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, main
from fer_batch.classify import load_model
from fer_batch.config import AnalyzeConfig, RunConfig
from fer_batch.errors import ModelError, UsageError
from fer_batch.labels import EMOTIONS
from fer_batch.pipeline import analyze, analyze_source
from fer_batch.records import COLUMNS
from fer_batch.summary import read_timeline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def classifier():
    from fer_batch.classify import Classifier

    return Classifier()


def _probs(records):
    return np.array([r.probs for r in records if r.probs is not None])


def test_one_face_photo(one_face_photo, classifier):
    recs = list(analyze([one_face_photo], classifier=classifier))
    assert len(recs) == 1
    r = recs[0]
    assert r.media == "image" and r.frame == 0 and r.time_s is None and r.face_id == 0
    assert r.det_score > 0.5 and r.w > 50 and r.h > 50
    assert abs(sum(r.probs) - 1.0) < 1e-5 and r.emotion in EMOTIONS and r.confidence == max(r.probs)


def test_several_faces_get_ids_left_to_right(multi_face_photo, classifier):
    recs = list(analyze([multi_face_photo], classifier=classifier))
    assert [r.face_id for r in recs] == [0, 1, 2]
    assert [r.x for r in recs] == sorted(r.x for r in recs)


def test_no_face_photo_gives_one_empty_row(no_face_photo, classifier):
    recs = list(analyze([no_face_photo], classifier=classifier))
    assert len(recs) == 1 and recs[0].face_id is None and recs[0].probs is None and recs[0].emotion is None


def test_video_rows_ids_and_sampling(face_video, classifier):
    recs = list(analyze([face_video.path], classifier=classifier))
    frames = sorted({r.frame for r in recs})
    assert frames == list(range(face_video.frames))  # every frame accounted for, faces or not
    by_frame = {f: [r for r in recs if r.frame == f] for f in frames}
    np.testing.assert_allclose(_probs(recs).sum(axis=1), 1.0, atol=1e-5)
    # While the face stays fully in view it keeps one id; out of view the frame has one empty row.
    for start, stop in face_video.intervals("in"):
        ids = {r.face_id for f in range(start, stop) for r in by_frame[f]}
        assert len(ids) == 1 and None not in ids, (start, stop, ids)
    for start, stop in face_video.intervals("out"):
        for f in range(start, stop):
            assert [r.face_id for r in by_frame[f]] == [None]
    times = [by_frame[f][0].time_s for f in frames]
    assert times == sorted(times) and times[-1] == pytest.approx((face_video.frames - 1) / face_video.fps, abs=0.05)

    every = list(analyze([face_video.path], classifier=classifier, every=5))
    assert sorted({r.frame for r in every}) == list(range(0, face_video.frames, 5))
    fps2 = list(analyze([face_video.path], classifier=classifier, fps=2.0))
    step = face_video.fps / 2.0  # 12 fps sampled at 2: every 6th frame, over the whole video
    assert sorted({r.frame for r in fps2}) == [int(round(i * step)) for i in range(int(face_video.frames / step))]


def test_parallel_workers_match_single_threaded(face_video, multi_face_photo, one_face_photo, classifier, tmp_path):
    for p in (face_video.path, multi_face_photo, one_face_photo):
        shutil.copy(p, tmp_path / Path(p).name)
    # Network batches of 7 and of 64 faces: a face's probabilities must not depend on its batch or its neighbours.
    single = list(analyze([tmp_path], classifier=load_model(batch_size=7), workers=1))
    parallel = list(analyze([tmp_path], classifier=load_model(batch_size=64), workers=2))
    key = lambda r: (r.source, r.frame, -1 if r.face_id is None else r.face_id)  # noqa: E731
    single.sort(key=key)
    parallel.sort(key=key)
    assert [r.to_row()[:10] for r in single] == [r.to_row()[:10] for r in parallel]
    np.testing.assert_allclose(_probs(single), _probs(parallel), atol=1e-5)
    recs, done = analyze_source(tmp_path / Path(face_video.path).name, classifier=classifier)
    assert done.ok and done.frames == face_video.frames
    mine = [r for r in single if r.source.endswith(Path(face_video.path).name)]
    assert [r.to_row()[2:10] for r in recs] == [r.to_row()[2:10] for r in mine]



def test_stream_source_gives_analyze_sources_events_as_they_are_classified(face_video, classifier, tmp_path):
    """SourceStart (the header's frame count), the records a network batch at a time, SourceDone last: the rows
    of a long video are never all held, and they are analyze_source's."""
    from fer_batch.pipeline import SourceStart, stream_source
    from fer_batch.records import FaceRecord, SourceDone

    class Counted:  # the real classifier, its batches counted
        def __init__(self, inner):
            self.inner, self.batch_size, self.calls = inner, inner.batch_size, 0

        def predict(self, crops, offset=0):
            self.calls += 1
            return self.inner.predict(crops, offset=offset)

    small = Counted(load_model(batch_size=4))  # batches of 4 faces: the video's rows come a few frames at a time
    events = stream_source(face_video.path, classifier=small)
    first = next(events)
    assert isinstance(first, SourceStart) and first.frames == face_video.frames
    assert isinstance(next(events), FaceRecord) and small.calls == 1  # the first rows before the rest is classified
    rest = list(events)
    assert small.calls > 1
    assert isinstance(rest[-1], SourceDone) and rest[-1].ok and rest[-1].frames == face_video.frames
    records, done = analyze_source(face_video.path, classifier=small.inner)
    assert rest == [*records[1:], done]
    (tmp_path / "notes.txt").write_text("not media")
    (only,) = list(stream_source(tmp_path / "notes.txt"))
    assert isinstance(only, SourceDone) and only.error.startswith("not a supported image or video file (suffix "
                                                                  "'.txt'); images: .bmp, .gif, .jpeg")

def test_a_batch_size_the_classifier_given_would_override_is_refused(one_face_photo, classifier):
    with pytest.raises(UsageError, match=r"batch_size=7, but the classifier given runs batches of \d+; make it with "
                                         r"fer_batch.load_model\(\.\.\., batch_size=7\)"):
        analyze([one_face_photo], classifier=classifier, batch_size=7)
    with pytest.raises(ModelError, match="--model 'fsat' is neither a packaged model"):
        analyze([one_face_photo], model="fsat")  # at the call, as a missing path is, not at the first next()
    # A notebook's slips: a misspelt option, a string or None where a number goes; UsageError naming both spellings.
    with pytest.raises(UsageError, match=r"unknown option 'evry' \(did you mean 'every'\?\); analyze\(\) takes every"):
        analyze([one_face_photo], evry=5)
    with pytest.raises(UsageError, match=r"batch_size \(--batch-size\) must be a whole number, got '8'"):
        analyze([one_face_photo], batch_size="8")
    with pytest.raises(UsageError, match=r"every \(--every\) must be a whole number, got True"):
        analyze([one_face_photo], every=True)
    with pytest.raises(UsageError, match=r"min_face \(--min-face\) must be a whole number, got None"):
        analyze([one_face_photo], min_face=None)
    # fps=True had been taken for 1 frame a second; max_pixels=0 failed every photo on its size, one by one
    with pytest.raises(UsageError, match=r"--fps must be a positive number of frames per second, got True"):
        analyze([one_face_photo], fps=True)
    with pytest.raises(UsageError, match=r"max_pixels must be at least 1, got 0"):
        analyze([one_face_photo], max_pixels=0)
    assert AnalyzeConfig(fps=np.float32(2)).fps == 2  # NumPy's numbers are numbers
    # np.int64(5) had been refused as "must be a whole number, got 5"; taken, as Python's numbers
    config = AnalyzeConfig(every=np.int64(5), batch_size=np.int32(32), min_score=np.float32(0.75))
    assert (config.every, config.batch_size, config.min_score) == (5, 32, 0.75)
    assert type(config.every) is int and type(config.min_score) is float


def test_a_model_or_runtime_the_classifier_given_does_not_run_is_refused(one_face_photo, classifier, tmp_path):
    """analyze(model="accurate", classifier=fast) ran fast without a word; run_batch recorded its config's model
    in the journal and report while the classifier's made the rows (a resume then mixed two networks)."""
    from fer_batch.batch import run_batch
    from fer_batch.config import RunConfig

    assert classifier.path.name == "fast.keras"
    with pytest.raises(UsageError, match=r"analyze\(\): the classifier given runs .*fast.keras, but the model asked "
                                         r"for is 'accurate'"):
        analyze([one_face_photo], classifier=classifier, model="accurate")
    other = "keras" if classifier.runtime == "tflite" else "tflite"
    with pytest.raises(UsageError, match=rf"analyze\(\): the classifier given runs in {classifier.runtime}, but "
                                         rf"runtime '{other}' was asked for"):
        analyze([one_face_photo], classifier=classifier, runtime=other)
    config = RunConfig(paths=(str(one_face_photo),), out=tmp_path / "r.csv", analyze=AnalyzeConfig(model="accurate"))
    with pytest.raises(UsageError, match=r"run_batch\(\): the classifier given runs .*fast.keras"):
        run_batch(config, classifier=classifier)
    assert not (tmp_path / "r.csv").exists()
    assert len(list(analyze([one_face_photo], classifier=classifier, model="fast"))) == 1  # the same network


@pytest.mark.parametrize("smooth", ["2", True])
def test_a_smoothing_window_of_another_type_is_a_usage_error(tmp_path, one_face_photo, smooth):
    """A string had raised a bare TypeError from the comparison; True had been taken for 1 s."""
    with pytest.raises(UsageError, match=f"--smooth must be a positive number of seconds, got {smooth!r}"):
        RunConfig(paths=[one_face_photo], out=tmp_path / "r.csv", summary=tmp_path / "s.csv", smooth=smooth)


def test_cli_batch_with_bad_files(tmp_path, one_face_photo, multi_face_photo, no_face_photo, face_video,
                                  corrupt_video, capsys):
    media = tmp_path / "media"
    media.mkdir()
    for p in (one_face_photo, multi_face_photo, no_face_photo, face_video.path, corrupt_video):
        shutil.copy(p, media / Path(p).name)
    (media / "empty.jpg").write_bytes(b"")
    (media / "fake.png").write_text("not an image")
    out = tmp_path / "res.csv"
    code = main(["analyze", str(media), "--out", str(out), "--summary", str(tmp_path / "sum.csv"),
                 "--charts", str(tmp_path / "charts"), "--every", "2", "--smooth", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_SOME_FAILED
    assert "empty.jpg: empty file" in err and "fake.png" in err and "3 failed" in err
    timeline = read_timeline(out)
    assert list(timeline.columns) == list(COLUMNS)
    errors = pd.read_csv(tmp_path / "res.errors.csv")
    assert sorted(Path(s).name for s in errors["source"]) == ["corrupt.mp4", "empty.jpg", "fake.png"]
    video = timeline[timeline["source"].str.endswith(Path(face_video.path).name)]
    assert sorted(video["frame"].unique()) == list(range(0, face_video.frames, 2))
    faces = timeline.dropna(subset=["face_id"])
    np.testing.assert_allclose(faces[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-4)
    assert (faces["emotion"] == faces[list(EMOTIONS)].idxmax(axis=1)).all()
    # The summary agrees with the timeline it came from.
    summary = pd.read_csv(tmp_path / "sum.csv")
    for row in summary.dropna(subset=["face_id"]).itertuples():
        rows = faces[(faces["source"] == row.source) & (faces["face_id"] == row.face_id)]
        assert row.frames_with_face == rows["frame"].nunique()
        assert row.mean_happy == pytest.approx(rows["happy"].mean(), abs=1e-5)
    assert "smoothed_dominant_emotion" in summary.columns
    charts = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert "emotion_distribution.png" in charts and any(Path(face_video.path).stem in c for c in charts)
    # Refuses to clobber; --overwrite replaces.
    assert main(["analyze", str(media), "--out", str(out), "--quiet"]) == EXIT_USAGE
    assert "already exists" in capsys.readouterr().err


def test_animated_images_are_analysed_frame_by_frame_and_annotated_as_videos(tmp_path, capsys, classifier):
    """A face walking across an animated GIF and WebP: a row per frame at the animation's own times, the box
    following the face, an annotated MP4 copy of every frame at those times, report thumbnails from the frame."""
    import av

    import synthetic_media as synthetic
    from fer_batch.thumbs import face_thumbnails

    photo = synthetic.photo_faces(1, (240, 300)).rgb
    frames = []
    for i in range(4):
        canvas = np.full((300, 480, 3), 120, np.uint8)
        canvas[:, 60 * i:60 * i + 240] = photo
        frames.append(canvas)
    media = tmp_path / "media"
    media.mkdir()
    for name in ("walk.gif", "walk.webp"):
        synthetic.save_animation(media / name, frames, [100, 100, 200, 100])
    out = tmp_path / "r.csv"
    code = main(["analyze", str(media), "--out", str(out), "--annotate", str(tmp_path / "ann"), "--report",
                 str(tmp_path / "r.html"), "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    timeline = read_timeline(out)
    for name in ("walk.gif", "walk.webp"):
        rows = timeline[timeline["source"] == str(media / name)]
        assert rows["media"].tolist() == ["video"] * 4 and rows["frame"].tolist() == [0, 1, 2, 3], name
        assert rows["time_s"].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.4])
        assert rows["face_id"].tolist() == [0] * 4
        np.testing.assert_allclose(np.diff(rows["x"].astype(float)), 60, atol=8)
        copy = tmp_path / "ann" / str(media / f"{name}.mp4").lstrip("/")
        with av.open(str(copy)) as container:
            times = [frame.time for frame in container.decode(video=0)]
        # every frame at its time, and the last again at the end: MP4 keeps no duration for its last frame
        assert times == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.5]), name
        last = rows.iloc[3]
        box = (int(last.x), int(last.y), int(last.w), int(last.h))
        thumbs = face_thumbnails(media / name, "video", {0: (3, box, "neutral")}, {"neutral": (128, 128, 128)})
        crop = cv2.imdecode(np.frombuffer(thumbs[0][0], np.uint8), cv2.IMREAD_COLOR)
        assert crop.std() > 20  # the face, not the flat grey the frame is beside it
    page = (tmp_path / "r.html").read_text()
    assert page.count('alt="face #0, its most confident crop"') == 2  # one face in each animation, both shown
    records, done = analyze_source(media / "walk.webp", classifier=classifier)  # the library's one-file call too
    assert done.media == "video" and [r.time_s for r in records] == pytest.approx([0.0, 0.1, 0.2, 0.4])


def test_cli_usage_errors_exit_before_work(tmp_path, capsys, one_face_photo):
    out = tmp_path / "r.csv"
    assert main(["analyze", str(tmp_path / "nope"), "--out", str(out)]) == EXIT_USAGE
    assert "no such file or directory" in capsys.readouterr().err and not out.exists()
    assert main(["analyze", str(one_face_photo), "--out", str(out), "--detector", "medium"]) == EXIT_USAGE
    assert "short, full" in capsys.readouterr().err
    for score in ("0", "1.5"):  # at 0 BlazeFace would call every anchor a face
        assert main(["analyze", str(one_face_photo), "--out", str(out), "--min-score", score]) == EXIT_USAGE
        assert f"--min-score must lie in (0, 1], got {float(score)}" in capsys.readouterr().err
    for size in ("0", "1000000001"):  # a billion faces a batch had asked for 8 TiB: exit 70 with a MemoryError
        assert main(["analyze", str(one_face_photo), "--out", str(out), "--batch-size", size]) == EXIT_USAGE
        assert (f"batch_size (--batch-size) must be a whole number from 1 to 65,536, got {int(size)}"
                in capsys.readouterr().err)
    assert main(["analyze", str(one_face_photo), "--out", str(out), "--model", "huge"]) == EXIT_MODEL
    assert "fast, accurate" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as info:
        main(["analyze", str(one_face_photo), "--out", str(out), "--every", "2", "--fps", "1"])
    assert info.value.code == EXIT_USAGE
    assert "--fps: not allowed with argument --every" in capsys.readouterr().err


def test_output_paths_that_cannot_be_written_are_usage_errors(tmp_path, capsys, one_face_photo):
    """Checked before any work: a summary that would overwrite the timeline, a file where a folder must be."""
    out = tmp_path / "r.csv"
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    cases = [
        (["--summary", str(out)], "same file as --out"),
        (["--summary", str(tmp_path / "r.errors.csv")], "same file as the errors file"),
        (["--summary", str(a_file / "s.csv")], "is a file, not a directory"),
        (["--summary", str(tmp_path / "s.txt")], "must name a .csv file"),
        (["--charts", str(a_file)], "is a file; give a directory"),
        (["--charts", str(a_file / "charts")], "is a file, not a directory"),
    ]
    for extra, message in cases:
        assert main(["analyze", str(one_face_photo), "--out", str(out), "--quiet", *extra]) == EXIT_USAGE, extra
        assert message in capsys.readouterr().err, extra
        assert not out.exists()
    assert main(["analyze", str(one_face_photo), "--out", str(a_file / "r.csv"), "--quiet"]) == EXIT_USAGE
    assert "is a file, not a directory" in capsys.readouterr().err
    if Path("/proc/self").is_dir():  # Linux: /proc refuses new files even to root, as a read-only mount would
        for extra in (["--out", "/proc/r.csv"], ["--out", str(out), "--summary", "/proc/s.csv"],
                      ["--out", str(out), "--charts", "/proc/charts"]):
            assert main(["analyze", str(one_face_photo), "--quiet", *extra]) == EXIT_USAGE, extra
            assert "cannot write in '/proc'" in capsys.readouterr().err, extra
            assert not out.exists()
    existing = tmp_path / "old_summary.csv"
    existing.write_text("keep me")
    assert main(["analyze", str(one_face_photo), "--out", str(out), "--summary", str(existing), "--quiet"]) \
        == EXIT_USAGE
    assert "already exists" in capsys.readouterr().err and existing.read_text() == "keep me"
    errors_folder = tmp_path / "ef"
    (errors_folder / "r.errors.csv").mkdir(parents=True)  # where the errors CSV must go: found before any work
    assert main(["analyze", str(one_face_photo), "--out", str(errors_folder / "r.csv"), "--quiet"]) == EXIT_USAGE
    assert "its errors file" in capsys.readouterr().err and not (errors_folder / "r.csv").exists()
    # --debug's log goes beside --out, in a folder that may not exist yet.
    debug_out = tmp_path / "new_debug" / "r.csv"
    assert main(["analyze", str(one_face_photo), "--out", str(debug_out), "--debug", "--quiet"]) == EXIT_OK
    assert (tmp_path / "new_debug" / "r.debug.log").is_file()
    import logging

    package_log = logging.getLogger("fer_batch")
    assert not package_log.handlers and package_log.level == logging.NOTSET  # the logger is left as it was
    broken = tmp_path / "broken.keras"  # a zip Keras opens, then fails on: after the log is set up
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("metadata.json", "{}")
    assert main(["analyze", str(one_face_photo), "--out", str(tmp_path / "b.csv"), "--model", str(broken), "--debug",
                 "--quiet"]) == EXIT_MODEL
    assert str(broken) in capsys.readouterr().err
    assert not package_log.handlers and package_log.level == logging.NOTSET
    # A summary in a folder that does not exist yet is fine: it is created.
    nested = tmp_path / "new" / "deeper" / "s.csv"
    assert main(["analyze", str(one_face_photo), "--out", str(out), "--summary", str(nested), "--quiet"]) == EXIT_OK
    assert nested.is_file()


def test_one_path_on_its_own_is_one_path(one_face_photo):
    """``analyze("photo.jpg")`` analyses that photo, not each character of its name ("/" among them)."""
    from fer_batch.config import RunConfig
    from fer_batch.sources import discover

    for given in (str(one_face_photo), one_face_photo):
        found = discover(given)
        assert [s.name for s in found.sources] == [str(one_face_photo)] and not found.rejected
    assert RunConfig(paths=str(one_face_photo), out=Path("x.csv")).paths == (str(one_face_photo),)
    with pytest.raises(UsageError, match="empty path"):
        discover("")  # Path("") would be the working directory
    records = list(analyze(str(one_face_photo)))
    assert {r.source for r in records} == {str(one_face_photo)} and len(records) == 1


def test_help_is_free_of_heavy_imports():
    code = ("import sys, contextlib, io\nfrom fer_batch.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['analyze', '--help'])\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'mediapipe', 'cv2', 'pandas', 'matplotlib') "
            "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_help_names_every_exit_code_analyze_returns(capsys):
    from fer_batch import cli

    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    epilog = " ".join(capsys.readouterr().out.split("exit codes:")[1].split())
    # EXIT_DATASET is train's and evaluate's; EXIT_BROKEN_PIPE only ends a listing on stdout (`fer-batch models`).
    codes = [cli.EXIT_OK, cli.EXIT_SOME_FAILED, cli.EXIT_USAGE, cli.EXIT_MODEL, cli.EXIT_OUTPUT, cli.EXIT_INTERNAL,
             cli.EXIT_INTERRUPTED]
    for code in codes:
        assert f" {code} " in f" {epilog}", (code, epilog)


def test_shipped_samples_run_end_to_end(tmp_path):
    out = tmp_path / "results.csv"
    res = subprocess.run([sys.executable, "-m", "fer_batch", "analyze", str(REPO / "samples"), "--out", str(out),
                          "--summary", str(tmp_path / "summary.csv"), "--charts", str(tmp_path / "charts")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == EXIT_OK, res.stderr[-2000:]
    # stderr is a pipe here, as in a log or CI: a plain line per finished source, no bars' carriage returns and
    # cursor moves.
    assert "\r" not in res.stderr and "\x1b" not in res.stderr, res.stderr[-2000:]
    done = [line for line in res.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in done] == [f"[{i}/6" for i in range(1, 7)], res.stderr[-2000:]
    timeline = read_timeline(out)
    video = timeline[timeline["source"].str.endswith("moving_face.mp4")]
    assert f"moving_face.mp4: 140 frames, {video['face_id'].notna().sum()} face detections" in res.stderr, done
    per_source = timeline.groupby(timeline["source"].map(lambda s: Path(s).name))
    faces = per_source["face_id"].max().to_dict()
    assert faces["portrait.jpg"] == 0 and faces["group_of_three.jpg"] == 2 and faces["exif_rotated.jpg"] == 0
    # The one face that is not Grace Hopper's calm one: a real photo's smile, read as such by the default model.
    assert faces["smiling.jpg"] == 0
    assert timeline.loc[timeline["source"].str.endswith("smiling.jpg"), "emotion"].tolist() == ["happy"]
    assert pd.isna(faces["no_face.jpg"])
    assert per_source["frame"].nunique()["moving_face.mp4"] == 140
    assert "Traceback" not in res.stderr


def test_min_face_and_min_score_drop_the_faces_they_name(multi_face_photo, classifier):
    """The three-face photo holds faces of different sizes: --min-face between the smallest and the largest drops
    the smaller ones (by the boxes' shorter side); --min-score above every detection's score drops them all."""
    every = [r for r in analyze([multi_face_photo], classifier=classifier) if r.has_face]
    sizes = sorted(min(r.w, r.h) for r in every)
    assert len(sizes) == 3 and sizes[0] < sizes[-1]
    cut = (sizes[0] + sizes[-1]) // 2
    kept = [r for r in analyze([multi_face_photo], classifier=classifier, min_face=cut) if r.has_face]
    assert sorted(min(r.w, r.h) for r in kept) == [s for s in sizes if s >= cut]
    top = max(r.det_score for r in every)
    none = list(analyze([multi_face_photo], classifier=classifier, min_score=min(0.999, top + 0.001)))
    assert [r.face_id for r in none] == [None]  # one empty row: analysed, no face kept


def test_min_score_below_what_auto_keeps_changes_nothing_and_says_so(multi_face_photo, classifier, tmp_path,
                                                                      capsys):
    def faces(min_score):
        return [(r.face_id, r.x, r.y, r.w, r.h) for r in analyze([multi_face_photo], classifier=classifier,
                                                                 min_score=min_score) if r.has_face]

    assert len(faces(0.5)) == 3 and faces(0.2) == faces(0.5)
    out = tmp_path / "r.csv"
    assert main(["analyze", str(multi_face_photo), "--out", str(out), "--min-score", "0.2", "--quiet"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "note: --min-score 0.2 changes nothing with --detector auto" in err, err
    assert main(["analyze", str(multi_face_photo), "--out", str(out), "--overwrite", "--min-score", "0.2",
                 "--detector", "short", "--quiet"]) == EXIT_OK
    assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".PNG"])
def test_every_image_suffix_is_analysed_inside_a_folder(tmp_path, one_face_photo, classifier, suffix):
    """README's image suffixes, in a folder (where an unknown suffix would only be counted as ignored)."""
    from PIL import Image

    with Image.open(one_face_photo) as im:
        im.convert("RGB").save(tmp_path / f"face{suffix}")
    rows = list(analyze([tmp_path], classifier=classifier))
    assert [r.source for r in rows] == [str(tmp_path / f"face{suffix}")] and rows[0].has_face


def test_a_failed_file_gets_one_progress_line_that_reads_as_a_failure(capsys):
    from fer_batch.cli.analyze import _LineProgress
    from fer_batch.records import SourceDone

    progress = _LineProgress()
    progress.start(2, 0)
    progress.source_done(SourceDone("a.jpg", "image", frames=1, faces=2))
    progress.source_done(SourceDone("b.jpg", "", frames=0, faces=0, error="empty file (0 bytes)"))
    assert capsys.readouterr().err.splitlines() == ["[1/2] a.jpg: 1 frame, 2 face detections",
                                                    "[2/2] error: b.jpg: empty file (0 bytes)"]


def test_an_unexpected_exception_is_an_internal_error_not_a_failed_file(tmp_path, capsys, one_face_photo,
                                                                         monkeypatch):
    """Exit 1 means "some files failed"; a bug must not read as that: exit 70, with the traceback to report."""
    from fer_batch import batch, cli

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(batch, "run_batch", broken)
    code = main(["analyze", str(one_face_photo), "--out", str(tmp_path / "r.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERNAL == 70
    assert "Traceback" in err and "internal error (RuntimeError: boom): a bug in fer-batch" in err


def test_output_folders_are_never_analysed_as_inputs(tmp_path, capsys, one_face_photo):
    """Copies and charts written inside the input tree carry a marker that every later walk skips (a resume without
    --annotate, another run of the tree); an output folder that is the input folder itself is refused."""
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(one_face_photo, tree / "a.jpg")
    out = tmp_path / "r.csv"
    assert main(["analyze", str(tree), "--out", str(out), "--annotate", str(tree / "ann"), "--charts",
                 str(tree / "charts"), "--quiet"]) == EXIT_OK
    assert (tree / "ann" / ".fer-batch-output").is_file() and (tree / "charts" / ".fer-batch-output").is_file()
    assert list((tree / "ann").rglob("*.jpg"))  # the copy is there, in the tree
    capsys.readouterr()
    assert main(["analyze", str(tree), "--out", str(out), "--resume", "--quiet"]) == EXIT_OK  # without --annotate
    err = capsys.readouterr().err
    assert "0 succeeded, 0 failed, 1 skipped (already done); 0 rows written" in err
    passed = (f"note: 2 folders holding an earlier run's charts or annotated copies (marked .fer-batch-output) not "
              f"walked into: {tree / 'ann'}, {tree / 'charts'}; name one to analyse its files")
    assert passed in err  # said, not silent
    assert main(["analyze", str(tree), "--out", str(tmp_path / "again.csv"), "--quiet"]) == EXIT_OK
    assert read_timeline(tmp_path / "again.csv")["source"].tolist() == [str(tree / "a.jpg")]
    assert passed in capsys.readouterr().err
    assert main(["analyze", str(tree / "ann"), "--out", str(tmp_path / "copies.csv"), "--quiet"]) == EXIT_OK
    assert (f"note: {tree / 'ann'} holds an earlier run's charts or annotated copies (marked .fer-batch-output); its "
            "files are analysed because it was named" in capsys.readouterr().err)
    # An existing folder of the user's photos as --charts: once marked, every later walk would skip the photos.
    photos = tmp_path / "photos" / "2020"
    photos.mkdir(parents=True)
    shutil.copy(one_face_photo, photos / "b.jpg")
    (photos.parent / "notes.txt").write_text("x")
    assert main(["analyze", str(tree / "a.jpg"), "--out", str(tmp_path / "y.csv"), "--charts",
                 str(photos.parent), "--quiet"]) == EXIT_USAGE
    assert (f"--charts {str(photos.parent)!r} already holds photos or videos that fer-batch did not write "
            f"({os.path.join('2020', 'b.jpg')}): a folder fer-batch writes is marked" in capsys.readouterr().err)
    assert not (photos.parent / ".fer-batch-output").exists() and not (tmp_path / "y.csv").exists()
    for option in ("--charts", "--annotate"):
        assert main(["analyze", str(tree), "--out", str(tmp_path / "x.csv"), option, str(tree), "--quiet"]) \
            == EXIT_USAGE
        assert f"{option} {str(tree)!r} is the input folder {str(tree)!r} itself" in capsys.readouterr().err
        # A folder above the inputs, marked as an output, would hide them from every later walk through it.
        assert main(["analyze", str(tree / "a.jpg"), "--out", str(tmp_path / "x.csv"), option, str(tmp_path),
                     "--quiet"]) == EXIT_USAGE
        assert (f"{option} {str(tmp_path)!r} holds the input {str(tree / 'a.jpg')!r}: a folder fer-batch writes is "
                "marked as its output" in capsys.readouterr().err)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / ".fer-batch-output").exists()


def test_an_output_folder_is_looked_through_for_media_as_a_walk_would(tmp_path, one_face_photo, monkeypatch):
    """Before a folder is marked as an output, what a later walk would no longer see: photos in hidden folders do
    not count (no walk sees them), photos behind a folder link do; a tree too large to look through is named as
    such rather than passed as empty."""
    import fer_batch.config as config

    out = tmp_path / "out"
    (out / ".cache").mkdir(parents=True)
    shutil.copy(one_face_photo, out / ".cache" / "x.jpg")
    (out / "notes.txt").write_text("x")
    assert config._foreign_media(out) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(one_face_photo, elsewhere / "y.jpg")
    (out / "linked").symlink_to(elsewhere)
    linked = os.path.join("linked", "y.jpg")
    assert config._foreign_media(out) == f"photos or videos that fer-batch did not write ({linked})"
    (out / "linked").unlink()
    for k in range(30):
        (out / f"n{k}.txt").write_text("x")
    monkeypatch.setattr(config, "FOREIGN_MEDIA_SCAN", 20)
    assert config._foreign_media(out) == "more than 20 files and folders (not looked through for photos or videos)"


def test_the_debug_log_times_each_file_from_the_start_of_its_decoding(tmp_path, face_video, one_face_photo,
                                                                         classifier, caplog):
    """A file's start event reaches the run only with its first batch of faces, which the batcher holds until a
    batch is full: timed from there, a short video and every file after the first took "0.00 s"."""
    import logging
    import re

    from fer_batch.batch import run_batch

    for k in range(3):
        shutil.copy(face_video.path, tmp_path / f"v{k}.mp4")
    config = RunConfig(paths=tuple(str(tmp_path / f"v{k}.mp4") for k in range(3)), out=tmp_path / "r.csv")
    with caplog.at_level(logging.DEBUG, logger="fer_batch"):
        assert run_batch(config, classifier=classifier).ok
    times = [float(t) for t in re.findall(r"end \S+v\d\.mp4: \d+ frames, \d+ faces, ([\d.]+) s", caplog.text)]
    assert len(times) == 3 and min(times) > 0.05, caplog.text[-2000:]


def test_duplicates_and_a_run_without_media_are_noted(tmp_path, capsys, one_face_photo):
    tree = tmp_path / "tree"
    (tree / "2019").mkdir(parents=True)
    shutil.copy(one_face_photo, tree / "2019" / "a.jpg")
    (tree / "link.jpg").symlink_to(tree / "2019" / "a.jpg")
    (tree / "link_dir").symlink_to(tree / "2019")
    (tree / "2019" / "up").symlink_to(tree)  # a loop back to an ancestor: not a second copy of anything
    assert main(["analyze", str(tree), "--out", str(tmp_path / "r.csv"), "--quiet"]) == EXIT_OK
    err = capsys.readouterr().err
    # link.jpg is counted; link_dir, a folder met before, is counted and not walked again; the loop is not counted
    assert "note: 1 file reached a second time (through a symlink, or inputs that overlap) analysed once" in err
    assert "note: 1 folder reached a second time (through a symlink) not walked again" in err
    assert read_timeline(tmp_path / "r.csv")["source"].tolist() == [str(tree / "2019" / "a.jpg")]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("x")
    (docs / "clip.heic").write_bytes(b"x")
    assert main(["analyze", str(docs), "--out", str(tmp_path / "d.csv"), "--quiet"]) == EXIT_OK
    assert "note: no image or video file among the inputs (2 other files ignored); images: .bmp, .gif, .jpeg" in \
        capsys.readouterr().err


def test_arguments_of_the_wrong_kind_are_refused_at_the_call_by_name(one_face_photo, tmp_path):
    """overwrite="no" is truthy and replaced the file; errors=() failed at the first failed file, mid-run; a dict
    for config, or an AnalyzeConfig for run_batch, failed with an AttributeError; a folder given to analyze_source
    came back as "not a supported image or video file"."""
    from fer_batch.batch import run_batch
    from fer_batch.config import RunConfig
    from fer_batch.errors import FerBatchError
    from fer_batch.pipeline import analyze_source

    kept = tmp_path / "keep.csv"
    kept.write_text("mine\n")
    with pytest.raises(UsageError, match=r"RunConfig\(overwrite=...\) takes True or False, got 'no'"):
        RunConfig(paths=(str(one_face_photo),), out=kept, overwrite="no")
    assert kept.read_text() == "mine\n"
    with pytest.raises(UsageError, match=r"RunConfig\(out=...\) takes the timeline's .csv path, got None"):
        RunConfig(paths=(str(one_face_photo),), out=None)
    with pytest.raises(FerBatchError, match=r"analyze\(errors=...\) takes a list to append failures to, got tuple"):
        analyze([one_face_photo], errors=())
    with pytest.raises(FerBatchError, match=r"analyze\(config=...\) takes an AnalyzeConfig, got dict"):
        analyze([one_face_photo], config={"every": 5})
    with pytest.raises(UsageError, match=r"run_batch\(\) takes a RunConfig, got AnalyzeConfig"):
        run_batch(AnalyzeConfig())
    with pytest.raises(UsageError, match=f"'{tmp_path}' is a folder; analyze_source and stream_source take one file"):
        analyze_source(tmp_path)


def test_library_arguments_that_would_fail_later_are_refused_at_the_call(one_face_photo, classifier, tmp_path):
    """From a walk-through of the library: stream_source/analyze_source ran another model than their config named
    (analyze() refused it); a model's name given as classifier= failed at the first batch with an AttributeError,
    after run_batch had made its output files (and the next run was refused over them); a batch_size in a config
    was overridden by the classifier's without a word; summary=True failed in pathlib; progress=Progress (the
    class) failed at close(), after the whole run."""
    from fer_batch.batch import Progress, run_batch
    from fer_batch.classify import Classifier
    from fer_batch.pipeline import stream_source

    with pytest.raises(UsageError, match=r"stream_source\(\): the classifier given runs .*fast.keras, but the model "
                                         r"asked for is 'accurate'"):
        analyze_source(one_face_photo, AnalyzeConfig(model="accurate"), classifier=classifier)
    with pytest.raises(ModelError):
        stream_source(one_face_photo, AnalyzeConfig(model="nope"))  # at the call, not at the first next()
    with pytest.raises(UsageError, match=r"stream_source\(config=...\) takes an AnalyzeConfig, got dict"):
        analyze_source(one_face_photo, {"every": 2})
    with pytest.raises(UsageError, match=r"take one file, got list"):
        analyze_source([one_face_photo, one_face_photo])
    with pytest.raises(UsageError, match=r"analyze\(\): classifier= takes a loaded classifier "
                                         r"\(fer_batch.load_model\('fast'\)\), got str 'fast'"):
        analyze([one_face_photo], classifier="fast")
    out = tmp_path / "r.csv"
    with pytest.raises(UsageError, match=r"run_batch\(\): classifier= takes a loaded classifier"):
        run_batch(RunConfig(paths=(str(one_face_photo),), out=out), classifier="fast")
    closed = Classifier()
    closed.close()
    with pytest.raises(UsageError, match=r"run_batch\(\): the classifier given was closed"):
        run_batch(RunConfig(paths=(str(one_face_photo),), out=out), classifier=closed)
    assert not out.exists() and not (tmp_path / "r.errors.csv").exists()
    with pytest.raises(UsageError, match=r"batch_size=64, but the classifier given runs batches of 256"):
        analyze([one_face_photo], AnalyzeConfig(batch_size=64), classifier=classifier)
    with pytest.raises(UsageError, match=r"RunConfig\(summary=...\) takes a path \(str or Path\) or None, got True"):
        RunConfig(paths=(str(one_face_photo),), out=out, summary=True)
    with pytest.raises(UsageError, match=r"RunConfig\(charts=...\) takes a path .* got ''"):
        RunConfig(paths=(str(one_face_photo),), out=out, charts="")
    with pytest.raises(UsageError, match=r"progress= takes an object, got the class Progress; give Progress\(\)"):
        run_batch(RunConfig(paths=(str(one_face_photo),), out=out), progress=Progress)
    assert not out.exists()
    # The empty batch the docstring promises, and a path where pixels were expected.
    assert classifier.predict([]).shape == (0, 7)
    with pytest.raises(UsageError, match=r"crops: expected face pixels, got the path '.*'; read and cut the faces"):
        classifier.predict(str(one_face_photo))


def test_timeline_readers_and_writers_refuse_what_is_not_theirs(tmp_path, one_face_photo):
    """read_timeline and summarize given the summary CSV (an easy slip) failed with pandas' KeyError: 'emotion';
    the errors CSV gave an empty summary; write_charts marked a folder of photos as output (every later walk then
    skipped them); write_report took the SourceDone list analyze(errors=...) fills only as pairs."""
    from fer_batch.batch import run_batch
    from fer_batch.charts import write_charts
    from fer_batch.records import SourceDone
    from fer_batch.report import build_report
    from fer_batch.sources import discover
    from fer_batch.summary import summarize
    from fer_batch.timeline import Timeline

    config = RunConfig(paths=(str(one_face_photo),), out=tmp_path / "r.csv", summary=tmp_path / "s.csv")
    run_batch(config)
    for wrong in (tmp_path / "s.csv", tmp_path / "r.errors.csv"):
        with pytest.raises(UsageError, match=rf"timeline '{wrong}' is not a timeline CSV \(its first line has "
                                             r"'source, .*give the --out CSV of a run, not its summary or errors"):
            read_timeline(wrong)
        with pytest.raises(UsageError, match="is not a timeline CSV"):
            summarize(wrong)
    with pytest.raises(UsageError, match=rf"timeline '{tmp_path}': a folder"):
        read_timeline(tmp_path)
    with pytest.raises(UsageError, match=r"is not a timeline CSV \(binary data, not a CSV; a timeline has source"):
        Timeline.from_csv(one_face_photo)
    with pytest.raises(UsageError, match=r"chunk_rows must be a whole number of at least 1, got 0"):
        Timeline.from_csv(tmp_path / "r.csv", chunk_rows=0)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(one_face_photo, photos / "me.jpg")
    with pytest.raises(UsageError, match=r"write_charts\(directory=...\) '.*photos' already holds photos or videos "
                                         r"that fer-batch did not write \(me.jpg\)"):
        write_charts(tmp_path / "r.csv", photos)
    assert [s.name for s in discover([str(tmp_path)]).sources if s.name.endswith("me.jpg")]  # still walked
    with pytest.raises(UsageError, match="smooth must be a positive number of seconds, got -1"):
        write_charts(tmp_path / "r.csv", tmp_path / "charts", smooth=-1)
    page = build_report(tmp_path / "r.csv", [SourceDone("gone.jpg", "image", 0, 0, error="file gone")], settings={},
                        line="", paths={})
    assert "<td>gone.jpg</td><td>file gone</td>" in page


def test_the_errors_module_is_reachable_from_a_fresh_import():
    """The README's fer_batch.errors.UsageError raised AttributeError until something had imported the submodule."""
    code = ("import fer_batch, sys; assert 'fer_batch.pipeline' not in sys.modules; "
            "print(fer_batch.errors.UsageError.__name__, fer_batch.UsageError is fer_batch.errors.UsageError)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and res.stdout.strip() == "UsageError True", res.stderr


def test_paths_of_the_wrong_kind_are_named(one_face_photo):
    """analyze(5) raised "'int' object is not iterable", analyze([None]) os.fsdecode's TypeError, and a generator
    passed a second time "give at least one file" with no word of why."""
    with pytest.raises(UsageError, match=r"paths: give a file or folder, or a list of them, got int 5"):
        analyze(5)
    with pytest.raises(UsageError, match=r"paths: each must be a str or Path, got NoneType None"):
        analyze([None])
    paths = (p for p in [str(one_face_photo)])
    assert len(list(analyze(paths))) == 1
    with pytest.raises(UsageError, match=r"an iterator that was already used up: pass a list"):
        analyze(paths)
    with pytest.raises(UsageError, match=r"give at least one file or directory to analyse$"):
        analyze([])


def test_a_gzipped_timeline_and_arrays_of_paths_are_taken(tmp_path, one_face_photo):
    """The timeline check first refused a .gz timeline that pandas reads (as binary data); NumPy arrays and pandas
    Series of paths failed on their truth value."""
    import gzip

    from fer_batch.batch import run_batch
    from fer_batch.summary import summarize

    run_batch(RunConfig(paths=(str(one_face_photo),), out=tmp_path / "r.csv"))
    with open(tmp_path / "r.csv", "rb") as f, gzip.open(tmp_path / "r.csv.gz", "wb") as g:
        g.write(f.read())
    assert len(summarize(tmp_path / "r.csv.gz")) == len(summarize(tmp_path / "r.csv")) == 1
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(UsageError, match=r"is not a timeline CSV \(an empty file"):
        read_timeline(tmp_path / "empty.csv")
    both = [str(shutil.copy(one_face_photo, tmp_path / name)) for name in ("a.jpg", "b.jpg")]
    for paths in (np.array(both), pd.Series(both)):
        assert len(list(analyze(paths))) == 2


def test_load_model_and_write_report_name_what_they_take(tmp_path, one_face_photo):
    from fer_batch.batch import run_batch
    from fer_batch.report import write_report

    with pytest.raises(UsageError, match=r"load_model\(\): unknown option 'batchsize' \(did you mean 'batch_size'\?\); "
                                         r"it takes batch_size, runtime, threads"):
        load_model("fast", batchsize=3)
    run_batch(RunConfig(paths=(str(one_face_photo),), out=tmp_path / "r.csv"))
    with pytest.raises(UsageError, match=r"write_report\(path=...\) must name an .html file, got '.*report.txt'"):
        write_report(tmp_path / "report.txt", tmp_path / "r.csv", [], settings={}, line="", paths={})
    assert not (tmp_path / "report.txt").exists()

