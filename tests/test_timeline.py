"""Reading a timeline one source at a time: the summary, charts and report made from the file streamed are the ones
made from it read whole, whatever the chunk size."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from fer_batch.batch import run_batch
from fer_batch.config import AnalyzeConfig, RunConfig
from fer_batch.errors import InputError
from fer_batch.timeline import Timeline, Totals, read_timeline


@pytest.fixture(scope="module")
def timeline_csv(tmp_path_factory, face_video, multi_face_photo, no_face_photo):
    from fer_batch.classify import Classifier

    tmp = tmp_path_factory.mktemp("timeline")
    media = tmp / "media"
    media.mkdir()
    shutil.copy(multi_face_photo, media / "a_group.jpg")
    shutil.copy(face_video.path, media / "b_clip.mp4")
    shutil.copy(no_face_photo, media / "c_empty.jpg")
    shutil.copy(face_video.path, media / "d_clip_again.mp4")
    config = RunConfig(paths=(str(media),), out=tmp / "r.csv", analyze=AnalyzeConfig(every=3))
    run_batch(config, classifier=Classifier())
    return config.out


@pytest.mark.parametrize("chunk_rows", [1, 7, 100_000])
def test_streamed_sources_are_the_whole_files_groups(timeline_csv, chunk_rows):
    whole = read_timeline(timeline_csv)
    assert whole["source"].nunique() == 4 and len(whole) > 20  # chunks of 7 cut through the videos
    streamed = list(Timeline.from_csv(timeline_csv, chunk_rows=chunk_rows).by_source())
    expected = list(whole.groupby("source", sort=False))
    assert [name for name, _ in streamed] == [name for name, _ in expected]
    for (_, got), (_, want) in zip(streamed, expected, strict=True):
        pd.testing.assert_frame_equal(got, want)


def test_totals_count_sources_rows_and_face_detections(timeline_csv):
    whole = read_timeline(timeline_csv)
    totals = Timeline.from_csv(timeline_csv, chunk_rows=5).totals()
    faces = whole[whole["face_id"].notna()]
    assert (totals.sources, totals.rows, totals.face_detections) == (4, len(whole), len(faces))
    assert totals.emotions == faces["emotion"].value_counts().to_dict()
    assert sum(Totals().emotion_counts()) == 0


def test_summary_charts_and_report_from_the_file_equal_those_from_the_dataframe(timeline_csv, tmp_path):
    from fer_batch.charts import write_charts
    from fer_batch.report import build_report
    from fer_batch.summary import summarize

    whole = read_timeline(timeline_csv)
    streamed = Timeline.from_csv(timeline_csv, chunk_rows=7)
    pd.testing.assert_frame_equal(summarize(streamed, smooth=0.5), summarize(whole, smooth=0.5))
    charts = {}
    for name, timeline in (("whole", whole), ("streamed", streamed)):
        written = write_charts(timeline, tmp_path / name, smooth=0.5)
        charts[name] = {p.name: p.read_bytes() for p in written}
    assert sorted(n.rsplit("media_", 1)[-1] for n in charts["whole"]) == [
        "b_clip.mp4.png", "d_clip_again.mp4.png", "emotion_distribution.png"]
    assert charts["streamed"] == charts["whole"]
    paths = {name: Path(name) for name in whole["source"].unique()}
    kwargs = dict(settings={"inputs": ["media"]}, line="4 sources", paths=paths, smooth=0.5)
    page = build_report(streamed, [("x.jpg", "empty file")], **kwargs)
    assert page == build_report(whole, [("x.jpg", "empty file")], **kwargs)
    assert "Sources with results (4)" in page and page.count('<details class="src"') == 4


def test_a_source_whose_rows_are_not_together_is_named(timeline_csv, tmp_path):
    whole = read_timeline(timeline_csv)
    first = whole["source"].iloc[0]
    joined = tmp_path / "joined.csv"
    pd.concat([whole, whole[whole["source"] == first]]).to_csv(joined, index=False)
    with pytest.raises(InputError, match=r"joined\.csv: the rows of source '.*a_group\.jpg' are not all together"):
        list(Timeline.from_csv(joined, chunk_rows=3).by_source())


def test_a_report_stopped_midway_leaves_no_partial_file(timeline_csv, tmp_path):
    from fer_batch.report import write_report

    seen = []

    def between():
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path / "r.html", Timeline.from_csv(timeline_csv), [], settings={}, line="", paths={},
                     between=between)
    assert list(tmp_path.iterdir()) == []


def test_a_run_where_every_file_failed_still_writes_its_summary_charts_and_report(tmp_path, capsys):
    """The timeline is its header only: no source to stream, and every output says so rather than failing."""
    from fer_batch.cli import EXIT_SOME_FAILED, main

    notes = tmp_path / "notes.txt"
    notes.write_text("not media")
    out = tmp_path / "o"
    code = main(["analyze", str(notes), "--out", str(out / "r.csv"), "--summary", str(out / "s.csv"),
                 "--charts", str(out / "charts"), "--report", str(out / "r.html"), "--quiet"])
    assert code == EXIT_SOME_FAILED, capsys.readouterr().err
    assert Timeline.from_csv(out / "r.csv").totals() == Totals()
    assert pd.read_csv(out / "s.csv").empty
    assert (out / "charts" / "emotion_distribution.png").is_file()
    assert "Sources with results (0)" in (out / "r.html").read_text(encoding="utf-8")
