import numpy as np
import pandas as pd
import pytest

from fer_batch.errors import UsageError
from fer_batch.labels import EMOTIONS
from fer_batch.records import COLUMNS, FaceRecord
from fer_batch.summary import SUMMARY_COLUMNS, smooth_probabilities, summarize


def _timeline(records):
    return pd.DataFrame([r.to_row() for r in records], columns=COLUMNS)


def _p(k, strength=0.7):
    p = np.full(7, (1 - strength) / 6)
    p[k] = strength
    return tuple(p)


def test_summary_matches_timeline_counts_and_means():
    recs = []
    for i in range(10):  # face 0: happy 6 frames then sad 4; face 1 appears in frames 0-2; frame 9 has no face
        if i < 9:
            recs.append(FaceRecord("v.mp4", "video", i, i / 5, 0, 0, 0, 10, 10, 0.9, _p(3 if i < 6 else 4)))
        else:
            recs.append(FaceRecord("v.mp4", "video", i, i / 5))
        if i < 3:
            recs.append(FaceRecord("v.mp4", "video", i, i / 5, 1, 50, 0, 10, 10, 0.8, _p(5)))
    recs.append(FaceRecord("empty.jpg", "image", 0, None))
    s = summarize(_timeline(recs))
    f0 = s[(s.source == "v.mp4") & (s.face_id == 0)].iloc[0]
    assert f0.frames_analysed == 10 and f0.frames_with_face == 9
    assert f0.dominant_emotion == "happy"
    assert f0.share_happy == pytest.approx(6 / 9) and f0.share_sad == pytest.approx(3 / 9)
    assert sum(f0[f"mean_{e}"] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-5)
    f1 = s[(s.source == "v.mp4") & (s.face_id == 1)].iloc[0]
    assert f1.frames_with_face == 3 and f1.dominant_emotion == "surprise"
    empty = s[s.source == "empty.jpg"].iloc[0]
    assert empty.frames_with_face == 0 and pd.isna(empty.face_id)


def test_smoothing_removes_a_one_frame_flicker():
    t = np.arange(30) / 10.0
    probs = np.array([_p(3)] * 30)
    probs[15] = _p(0, 0.9)
    sm = smooth_probabilities(t, probs, window_s=1.0)
    assert sm.argmax(axis=1).tolist() == [3] * 30
    np.testing.assert_allclose(sm.sum(axis=1), 1.0)
    recs = [FaceRecord("v.mp4", "video", i, t[i], 0, 0, 0, 5, 5, 0.9, tuple(probs[i])) for i in range(30)]
    s = summarize(_timeline(recs), smooth=1.0)
    assert s.iloc[0].share_angry == pytest.approx(1 / 30, abs=1e-6) and s.iloc[0].smoothed_share_angry == 0.0


def test_smoothed_columns_mirror_the_unsmoothed_ones():
    """--smooth adds the dominant emotion, means and shares after smoothing, defined as the unsmoothed ones are."""
    t = np.arange(40) / 10.0
    probs = np.array([_p(3)] * 25 + [_p(4)] * 15)
    recs = [FaceRecord("v.mp4", "video", i, t[i], 0, 0, 0, 5, 5, 0.9, tuple(probs[i])) for i in range(40)]
    s = summarize(_timeline(recs), smooth=1.0).iloc[0]
    sm = smooth_probabilities(t, probs, window_s=1.0)
    for i, e in enumerate(EMOTIONS):
        assert s[f"smoothed_mean_{e}"] == pytest.approx(sm[:, i].mean(), abs=1e-6)
        assert s[f"smoothed_share_{e}"] == pytest.approx((sm.argmax(1) == i).mean(), abs=1e-6)
    assert sum(s[f"smoothed_mean_{e}"] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-5)
    assert s.smoothed_dominant_emotion == EMOTIONS[int(sm.mean(0).argmax())] == s.dominant_emotion == "happy"
    assert list(summarize(_timeline(recs)).columns) == list(SUMMARY_COLUMNS)


def test_summary_csv_has_crlf_rows_and_round_trips_odd_names(tmp_path):
    """The summary is written like the timeline and errors CSVs (CRLF rows); a name holding a lone CR, LF, comma
    or quote stays one quoted field instead of splitting its row."""
    from fer_batch.summary import save_summary

    names = ["plain.jpg", "cr\rname.jpg", "lf\nname.jpg", 'com,ma "q".jpg']
    recs = [FaceRecord(n, "image", 0, None, 0, 1, 2, 10, 10, 0.9, _p(3)) for n in names]
    s = summarize(_timeline(recs))
    path = tmp_path / "s.csv"
    save_summary(s, path)
    data = path.read_bytes()
    assert data.count(b"\r\n") == len(names) + 1  # header and one row per name; the CR/LF inside names are quoted
    back = pd.read_csv(path, dtype={"source": str}, keep_default_na=False)
    assert back["source"].tolist() == s["source"].tolist()
    assert back["dominant_emotion"].tolist() == ["happy"] * len(names)


def test_face_times_and_the_whole_file_row():
    """first_s/last_s/seconds_seen per face; each video ends with one row pooling all its faces (empty face_id)."""
    recs = []
    for i in range(10):  # analysed every 0.2 s; face 0 in frames 0-8 (happy 6, sad 3), face 1 in frames 4-6
        recs.append(FaceRecord("v.mp4", "video", i, i / 5, 0, 0, 0, 10, 10, 0.9, _p(3 if i < 6 else 4))
                    if i < 9 else FaceRecord("v.mp4", "video", i, i / 5))
        if 4 <= i <= 6:
            recs.append(FaceRecord("v.mp4", "video", i, i / 5, 1, 50, 0, 10, 10, 0.8, _p(5)))
    recs.append(FaceRecord("p.jpg", "image", 0, None, 0, 1, 2, 10, 10, 0.9, _p(3)))
    s = summarize(_timeline(recs), smooth=0.5)
    f1 = s[(s.source == "v.mp4") & (s.face_id == 1)].iloc[0]
    assert (f1.first_s, f1.last_s, f1.seconds_seen) == pytest.approx((0.8, 1.2, 0.6))
    video = s[s.source == "v.mp4"]
    whole = video.iloc[-1]
    assert pd.isna(whole.face_id) and len(video) == 3
    assert whole.frames_with_face == 9 and whole.first_s == 0.0 and whole.last_s == pytest.approx(1.6)
    assert whole.seconds_seen == pytest.approx(9 * 0.2)
    assert whole.share_happy == pytest.approx(6 / 12) and whole.share_surprise == pytest.approx(3 / 12)
    assert whole.mean_surprise == pytest.approx((3 * 0.7 + 9 * 0.05) / 12, abs=1e-5)
    assert whole.smoothed_dominant_emotion in EMOTIONS
    photo = s[s.source == "p.jpg"]
    assert len(photo) == 1 and photo.iloc[0].face_id == 0 and pd.isna(photo.iloc[0].seconds_seen)


def test_fragments_are_left_out_of_the_tracked_faces():
    from fer_batch.summary import tracked_faces

    recs = []
    for i in range(12):
        if i >= 2:  # face 3 appears first but stays; face 0 arrives later; faces 1 and 2 flash for 1-2 frames
            recs.append(FaceRecord("v.mp4", "video", i, i / 5, 3, 0, 0, 10, 10, 0.9, _p(3)))
        if i >= 6:
            recs.append(FaceRecord("v.mp4", "video", i, i / 5, 0, 40, 0, 10, 10, 0.9, _p(3)))
        if i in (0, 1):
            recs.append(FaceRecord("v.mp4", "video", i, i / 5, 1, 80, 0, 10, 10, 0.9, _p(3)))
        if i == 5:
            recs.append(FaceRecord("v.mp4", "video", i, i / 5, 2, 80, 0, 10, 10, 0.9, _p(3)))
    assert tracked_faces(_timeline(recs)) == ([3, 0], 2)
    photo = [FaceRecord("p.jpg", "image", 0, None, k, 10 * k, 0, 5, 5, 0.9, _p(3)) for k in range(3)]
    assert tracked_faces(_timeline(photo)) == ([0, 1, 2], 0)
    # --fps 0.5 over 8 s: 4 analysed frames. A face in 2 of them is someone on screen; one in 1 of them a fragment.
    sparse = [FaceRecord("s.mp4", "video", f, f / 30, 0, 0, 0, 10, 10, 0.9, _p(3)) for f in (0, 60)]
    sparse += [FaceRecord("s.mp4", "video", f, f / 30, 1, 50, 0, 10, 10, 0.9, _p(3)) for f in (120, 180)]
    sparse += [FaceRecord("s.mp4", "video", 180, 6.0, 2, 90, 0, 10, 10, 0.9, _p(3))]
    assert tracked_faces(_timeline(sparse)) == ([0, 1], 1)
    two = [FaceRecord("t.mp4", "video", f, f / 30, f // 60, 0, 0, 10, 10, 0.9, _p(3)) for f in (0, 60)]
    assert tracked_faces(_timeline(two)) == ([0, 1], 0)  # 2 analysed frames: a face in one of them counts


def test_a_video_without_timestamps_is_smoothed_at_30_frames_a_second():
    """Without timestamps, smoothing counts frame / 30 s, as --fps sampling does, instead of leaving the smoothed
    columns equal to the raw ones."""
    probs = np.array([_p(3)] * 30)
    probs[15] = _p(0, 0.9)
    recs = [FaceRecord("v.mp4", "video", i, None, 0, 0, 0, 5, 5, 0.9, tuple(probs[i])) for i in range(30)]
    s = summarize(_timeline(recs), smooth=0.2).iloc[0]
    assert s.share_angry == pytest.approx(1 / 30, abs=1e-6) and s.smoothed_share_angry == 0.0
    want = smooth_probabilities(np.arange(30) / 30.0, probs, window_s=0.2)
    assert s.smoothed_mean_angry == pytest.approx(want[:, 0].mean(), abs=1e-6)


def test_charts_of_a_video_without_timestamps_are_written(tmp_path):
    from fer_batch.charts import write_charts

    recs = [FaceRecord("v.mp4", "video", i, None, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(60)]
    written = write_charts(_timeline(recs), tmp_path, smooth=0.5)
    assert written and all(p.exists() and p.stat().st_size > 0 for p in written)


def test_a_video_of_fragments_only_is_headed_no_face_tracked_not_0_faces():
    from fer_batch.report import build_report

    recs = [FaceRecord("v.mp4", "video", i, i / 5, None) for i in range(12)]
    recs[2] = FaceRecord("v.mp4", "video", 2, 0.4, 0, 0, 0, 10, 10, 0.9, _p(3))
    recs[7] = FaceRecord("v.mp4", "video", 7, 1.4, 1, 50, 0, 10, 10, 0.9, _p(3))
    page = build_report(_timeline(recs), [], settings={}, line="", paths={})
    assert "12 analysed frames · no face tracked; 2 face detections, mostly happy" in page
    assert "0 faces" not in page and "2 short fragments" in page


def test_a_timeline_chart_spans_the_video_also_without_a_tracked_face():
    from fer_batch.charts import timeline_figure

    # 3.1 s, no face (the last frame, at 3.0 s, shown until 3.1 s)
    empty = [FaceRecord("v.mp4", "video", i, i / 10, None) for i in range(31)]
    assert timeline_figure("v.mp4", _timeline(empty)).axes[0].get_xlim() == pytest.approx((0, 3.1))
    one = [FaceRecord("w.mp4", "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(10)]
    one += [FaceRecord("w.mp4", "video", i, i / 10, None) for i in range(10, 41)]  # the face leaves at 1 s
    assert timeline_figure("w.mp4", _timeline(one)).axes[0].get_xlim() == pytest.approx((0, 4.1))


def _crowd(n_faces: int):
    """A 200-frame clip with ``n_faces`` tracked faces: face k appears at frame k and stays (k * 7) % 50 + 3 frames,
    so their lengths differ and several tie; face 1000 flashes for one frame."""
    recs = [FaceRecord("crowd.mp4", "video", f, f / 25) for f in range(200)]
    for k in range(n_faces):
        recs += [FaceRecord("crowd.mp4", "video", f, f / 25, k, 10 * k, 0, 10, 10, 0.9, _p(k % 7))
                 for f in range(k, k + (k * 7) % 50 + 3)]
    recs.append(FaceRecord("crowd.mp4", "video", 150, 6.0, 1000, 0, 90, 10, 10, 0.9, _p(3)))
    return _timeline(recs).sort_values("frame", kind="stable")


def test_a_crowd_shows_the_faces_seen_longest_in_order_of_first_appearance():
    from fer_batch.summary import MAX_FACES_SHOWN, shown_faces, tracked_faces

    rows = _crowd(MAX_FACES_SHOWN + 8)
    tracked, fragments = tracked_faces(rows)
    assert len(tracked) == MAX_FACES_SHOWN + 8 and fragments == 1
    ids, fragments, more = shown_faces(rows)
    assert len(ids) == MAX_FACES_SHOWN and more == 8 and fragments == 1
    assert ids == sorted(ids)  # first appearances are in id order here
    length = {k: (k * 7) % 50 + 3 for k in tracked}
    assert min(length[k] for k in ids) >= max(length[k] for k in tracked if k not in ids)
    # Among faces of the shortest length kept, the first to appear win the ties.
    cut = min(length[k] for k in ids)
    tied = [k for k in tracked if length[k] == cut]
    assert [k for k in tied if k in ids] == tied[:len([k for k in tied if k in ids])]
    assert shown_faces(rows, most=len(tracked)) == (tracked, 1, 0)
    with pytest.raises(UsageError, match="most"):
        shown_faces(rows, most=0)


def test_charts_and_report_of_a_crowd_draw_the_cap_and_say_how_many_more(tmp_path):
    from fer_batch.charts import timeline_figure
    from fer_batch.report import build_report
    from fer_batch.summary import MAX_FACES_SHOWN

    rows = _crowd(MAX_FACES_SHOWN + 8)
    fig = timeline_figure("crowd.mp4", rows)
    assert len(fig.axes) == MAX_FACES_SHOWN
    assert "8 more tracked faces not shown" in fig._suptitle.get_text()
    page = build_report(rows, [], settings={}, line="", paths={})
    assert f"{MAX_FACES_SHOWN + 8} faces, mostly" in page  # the headline counts every tracked face
    assert page.count('<div class="face">') == MAX_FACES_SHOWN
    assert f"The {MAX_FACES_SHOWN} faces seen in the most frames are shown; 8 more tracked faces not" in page
    small = _crowd(5)
    assert len(timeline_figure("crowd.mp4", small).axes) == 5
    assert "seen in the most frames" not in build_report(small, [], settings={}, line="", paths={})


def test_the_charts_option_says_the_cap_it_applies():
    import argparse

    from fer_batch.cli import analyze
    from fer_batch.summary import MAX_FACES_SHOWN

    sub = argparse.ArgumentParser().add_subparsers()
    analyze.add_parser(sub)
    assert f"(the {MAX_FACES_SHOWN} seen longest)" in " ".join(sub.choices["analyze"].format_help().split())


@pytest.mark.parametrize("name", ["a$^$b.mp4", "cost $5 vs $6.mp4", "x$\\frac$.mp4"])
def test_a_dollar_sign_in_a_name_is_text_in_its_chart(tmp_path, name):
    """Matplotlib read a $...$ pair in the title as a formula: an invalid one raised (the run ended with exit 70 and
    no report), a valid one lost its dollar signs."""
    from fer_batch.charts import timeline_figure, write_charts

    recs = [FaceRecord(name, "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(5)]
    assert len(write_charts(_timeline(recs), tmp_path)) == 2
    assert timeline_figure(name, _timeline(recs)).get_suptitle() == name


def _polygon_xs(svg: str) -> np.ndarray:
    import re

    return np.array([float(x) for points in re.findall(r'points="([^"]*)"', svg)
                     for x in re.findall(r"([-\d.]+),[-\d.]+", points)])


def _drawn_x(ax) -> tuple[float, float]:
    """The time span a panel's stacked areas cover."""
    xs = np.concatenate([path.vertices[:, 0] for c in ax.collections for path in c.get_paths()])
    return float(xs.min()), float(xs.max())


def test_a_video_whose_first_frames_have_no_timestamps_is_drawn_on_one_time_base():
    """Frames without timestamps count a video by frame number; a face whose own frames all had times was drawn in
    seconds beside an axis in frame / 30 (its last 6.6 s cut off, 2,864 px into a 1,000 px chart)."""
    from fer_batch.charts import timeline_figure
    from fer_batch.report import timeline_svg

    recs = [FaceRecord("v.mp4", "video", i, None) for i in range(3)]
    recs += [FaceRecord("v.mp4", "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(3, 100)]
    rows = _timeline(recs)
    ax = timeline_figure("v.mp4", rows).axes[0]
    # drawn from its first frame to the end of its last (a frame stands for 1/30 s here)
    assert ax.get_xlim() == pytest.approx((0, 100 / 30)) and _drawn_x(ax) == pytest.approx((3 / 30, 100 / 30))
    xs = _polygon_xs(timeline_svg(rows, [0]))
    assert xs.min() == pytest.approx(56 + 936 * 3 / 100, abs=0.1) and xs.max() == pytest.approx(56 + 936, abs=0.1)


def test_a_face_seen_in_one_analysed_frame_is_a_column_as_wide_as_the_frame_stands_for():
    """Two frames analysed 2 s apart, a face in each: the PNG drew nothing for either, and the report a 1-s column,
    the second one past the end of its band."""
    from fer_batch.charts import timeline_figure
    from fer_batch.report import build_report, timeline_svg

    recs = [FaceRecord("v.mp4", "video", 0, 0.0, 0, 0, 0, 5, 5, 0.9, _p(3)),
            FaceRecord("v.mp4", "video", 60, 2.0, 1, 0, 0, 5, 5, 0.9, _p(4))]
    rows = _timeline(recs)
    fig = timeline_figure("v.mp4", rows)
    assert [ax.get_xlim() for ax in fig.axes[:2]] == [(0, 4.0), (0, 4.0)]
    assert [_drawn_x(ax) for ax in fig.axes[:2]] == [(0.0, 2.0), (2.0, 4.0)]
    svg = timeline_svg(rows, [0, 1])
    assert sorted(set(_polygon_xs(svg))) == pytest.approx([56.0, 524.0, 992.0])  # 0, 2 and 4 s of a 936-px band
    page = build_report(rows, [], settings={}, line="", paths={})
    assert "(1 analysed frame, ~2.0 s)" in page and "1 analysed frames" not in page


def test_the_fragment_note_gives_the_cut_off_the_source_was_held_to():
    """In a clip of 4 analysed frames a face in 2 counts: the note said "fewer than 3" beside a face seen in 2."""
    from fer_batch.charts import timeline_figure
    from fer_batch.report import build_report

    recs = [FaceRecord("s.mp4", "video", f, f / 30, 0, 0, 0, 10, 10, 0.9, _p(3)) for f in (0, 60)]
    recs += [FaceRecord("s.mp4", "video", f, f / 30) for f in (120, 180)]
    recs += [FaceRecord("s.mp4", "video", 180, 6.0, 1, 90, 0, 10, 10, 0.9, _p(3))]
    rows = _timeline(recs).sort_values("frame", kind="stable")
    page = build_report(rows, [], settings={}, line="", paths={})
    assert "1 short fragment (face ids seen in fewer than 2 analysed frames) left out" in page
    assert "fewer than 2 analysed frames) not shown" in timeline_figure("s.mp4", rows).get_suptitle()


def test_a_near_tie_goes_to_the_same_class_in_every_output():
    """Closer than the CSV's six places: the emotion column took the unrounded winner (sad), the summary, report and
    copies, reading the stored probabilities back, the first of the tie (happy)."""
    from fer_batch.timeline import as_timeline

    probs = (.04, .04, .04, .4000003, .4000004, .04, .0399993)
    rec = FaceRecord("p.jpg", "image", 0, None, 0, 0, 0, 5, 5, 0.9, probs)
    row = rec.to_row()
    back = FaceRecord.from_row(["" if v is None else str(v) for v in row])
    assert rec.emotion == row[COLUMNS.index("emotion")] == back.emotion == "happy"
    timeline = _timeline([rec])
    assert summarize(timeline).iloc[0].dominant_emotion == "happy"
    assert as_timeline(timeline).totals().emotion_counts()[EMOTIONS.index("happy")] == 1


def test_the_summary_of_a_table_in_any_row_order_is_the_same():
    probs = np.random.default_rng(0).dirichlet(np.ones(7), 10)
    recs = [FaceRecord("v.mp4", "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, tuple(probs[i])) for i in range(10)]
    rows = _timeline(recs)
    shuffled = rows.iloc[[0, 2, 1, 3, 5, 4, 6, 8, 7, 9]]
    pd.testing.assert_frame_equal(summarize(shuffled, smooth=0.5), summarize(rows, smooth=0.5))


@pytest.mark.parametrize("smooth", [float("nan"), -1.0, 0.0, float("inf")])
def test_summarize_refuses_a_smoothing_window_that_is_not_a_positive_number_of_seconds(smooth):
    recs = [FaceRecord("v.mp4", "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(5)]
    with pytest.raises(UsageError, match=r"smooth must be a positive number of seconds, got (nan|-1.0|0.0|inf)"):
        summarize(_timeline(recs), smooth=smooth)


def test_long_names_in_two_folders_get_chart_titles_that_tell_them_apart():
    """Titles kept the last 88 characters: two long names in different folders got the same title."""
    from fer_batch.charts import timeline_figure

    long = "interview_with_the_second_group_of_participants_recorded_in_the_afternoon_session_camera_b_take_3.mp4"
    titles = []
    for folder in ("site-north", "site-south"):
        recs = [FaceRecord(f"{folder}/{long}", "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(5)]
        titles.append(timeline_figure(f"{folder}/{long}", _timeline(recs)).get_suptitle())
    assert titles[0] != titles[1] and all(t.startswith("site-") and t.endswith("take_3.mp4") for t in titles)
    assert all(len(t) <= 110 for t in titles)


def test_a_long_chart_name_cut_at_a_dot_is_not_a_hidden_file():
    from fer_batch.charts import chart_name

    name = chart_name("clips/" + "x" * 50 + "." + "y" * 115 + ".mp4", set())
    assert name == "y" * 115 + ".mp4.png"


def test_sources_whose_names_clean_up_alike_get_the_same_charts_in_either_order(tmp_path):
    """'a b.mp4' and 'a_b.mp4' both clean up to 'a_b.mp4.png': the one sorted first gets that name, the other a
    hashed one, whichever a run (with --workers, say) wrote first."""
    from fer_batch.charts import write_charts

    emotion = {"a b.mp4": 3, "a_b.mp4": 4}  # charts that differ
    pngs = []
    for order in (["a b.mp4", "a_b.mp4"], ["a_b.mp4", "a b.mp4"]):
        recs = [FaceRecord(name, "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(emotion[name]))
                for name in order for i in range(5)]
        written = write_charts(_timeline(recs), tmp_path / str(len(pngs)))
        pngs.append({p.name: p.read_bytes() for p in written})
    first, second = pngs
    assert "a_b.mp4.png" in first and len(first) == 3 and first == second


def test_what_summarize_cannot_read_is_a_usage_error_that_says_how(tmp_path):
    """A plain TypeError, a KeyError from deep in pandas ('emotion', for a frame built from asdict) and pandas's
    FileNotFoundError: every error the library raises on purpose is a FerBatchError."""
    import dataclasses

    recs = [FaceRecord("v.mp4", "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(3)]
    with pytest.raises(UsageError, match="timeline: expected a Timeline, a DataFrame or a CSV path, not NoneType"):
        summarize(None)
    with pytest.raises(UsageError, match=r"the DataFrame lacks the column\(s\) emotion, angry, .*r.to_row\(\)"):
        summarize(pd.DataFrame(dataclasses.asdict(r) for r in recs))
    with pytest.raises(UsageError, match=f"timeline '{tmp_path / 'nope.csv'}': no such file"):
        summarize(tmp_path / "nope.csv")
    assert len(summarize(_timeline(recs))) == 2  # the face and the whole file


def test_a_face_in_every_analysed_frame_fills_its_band_to_the_end_of_the_video():
    """A 1-s clip sampled at 5 fps with a face in every sample: its band stopped at 0.8 s of a 0-1 s axis, while the
    card and the summary said it was seen ~1.0 s."""
    from fer_batch.charts import timeline_figure
    from fer_batch.report import build_report, timeline_svg

    rows = _timeline([FaceRecord("v.mp4", "video", 6 * i, i / 5, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(5)])
    ax = timeline_figure("v.mp4", rows).axes[0]
    assert ax.get_xlim() == pytest.approx((0, 1.0)) and _drawn_x(ax) == pytest.approx((0.0, 1.0))
    xs = _polygon_xs(timeline_svg(rows, [0]))
    assert (xs.min(), xs.max()) == pytest.approx((56, 56 + 936), abs=0.1)
    assert summarize(rows).iloc[0].seconds_seen == pytest.approx(1.0)
    assert "(5 analysed frames, ~1.0 s)" in build_report(rows, [], settings={}, line="", paths={})


def test_a_video_analysed_in_one_frame_has_no_seconds_seen_rather_than_zero():
    from fer_batch.report import build_report

    rows = _timeline([FaceRecord("one.mp4", "video", 0, 0.0, 0, 0, 0, 5, 5, 0.9, _p(3))])
    s = summarize(rows)
    assert len(s) == 2 and s.seconds_seen.isna().all() and (s.first_s == 0.0).all()
    page = build_report(rows, [], settings={}, line="", paths={})
    assert "seen at 0.00 s (1 analysed frame)" in page and "~0.0 s" not in page


def test_a_sources_headline_names_the_emotion_its_bar_shows_most_of():
    """Six detections happy by a little (0.40 against neutral 0.35), four neutral by a lot (0.9): neutral has the
    highest mean probability, happy came first in most detections, and the bar under the headline shows those
    shares: the headline said "mostly neutral" above a bar of 60% happy."""
    from fer_batch.report import build_report

    weak_happy = tuple(0.4 if e == "happy" else 0.35 if e == "neutral" else 0.05 for e in EMOTIONS)
    recs = [FaceRecord("v.mp4", "video", i, i / 5, 0, 0, 0, 10, 10, 0.9, weak_happy) for i in range(6)]
    recs += [FaceRecord("v.mp4", "video", i, i / 5, 1, 50, 0, 10, 10, 0.9, _p(6, 0.9)) for i in range(4)]
    rows = _timeline(recs).sort_values("frame", kind="stable")
    assert EMOTIONS[int(rows[list(EMOTIONS)].to_numpy().mean(axis=0).argmax())] == "neutral"
    page = build_report(rows, [], settings={}, line="", paths={})
    assert "2 faces, mostly happy</span>" in page
    assert "top emotion of 10 face detections: happy 60%, neutral 40%" in page


def test_the_report_says_how_a_video_without_timestamps_is_timed():
    from fer_batch.report import build_report
    from fer_batch.summary import untimed_note

    rows = _timeline([FaceRecord("pages.tif", "video", i, None, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(6)])
    page = build_report(rows, [], settings={}, line="", paths={})
    assert untimed_note() == "counted as frame / 30: the video has no timestamps"
    assert f"time {untimed_note()}" in page
    timed = _timeline([FaceRecord("v.mp4", "video", i, i / 30, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(6)])
    assert "no timestamps" not in build_report(timed, [], settings={}, line="", paths={})


def test_sources_whose_names_hold_undecodable_bytes_stay_apart():
    """pandas hashes strings with lone surrogates (how an undecodable byte of a file name is read back) alike:
    grouped by it, "caf\\udce9 1.jpg" was merged into "caf\\udce9 2.jpg" and its summary row lost."""
    a, b = "caf\udce9 1.jpg", "caf\udce9 2.jpg"
    rows = _timeline([FaceRecord(a, "image", 0, None, 0, 0, 0, 5, 5, 0.9, _p(3)),
                      FaceRecord(b, "image", 0, None, 0, 0, 0, 5, 5, 0.9, _p(4))])
    s = summarize(rows)
    assert list(s.source) == [a, b] and list(s.dominant_emotion) == ["happy", "sad"]


def test_a_band_ends_within_the_axis_and_a_long_one_keeps_its_extent_when_binned():
    """A face seen every other analysed frame ran a step of its own (two of the video's) past the axis's end; a face
    over more points than the report draws stopped short where its last bin was averaged."""
    from fer_batch.report import timeline_svg

    recs = [FaceRecord("v.mp4", "video", i, i / 10, None) for i in range(20)]
    recs += [FaceRecord("v.mp4", "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(1, 20, 2)]
    rows = _timeline(recs).sort_values("frame", kind="stable")
    xs = _polygon_xs(timeline_svg(rows, [0]))
    assert xs.max() == pytest.approx(56 + 936, abs=0.1)  # the axis's end (2.0 s), not past it
    long = _timeline([FaceRecord("v.mp4", "video", i, i / 10, 0, 0, 0, 5, 5, 0.9, _p(i % 7)) for i in range(1000)])
    xs = _polygon_xs(timeline_svg(long, [0]))
    assert (xs.min(), xs.max()) == pytest.approx((56, 56 + 936), abs=0.1)


def test_a_smoothing_window_counts_both_its_edges_whatever_the_float_rounding():
    """0.55 - 0.5 is 0.05000000000000004: the frame at 0.05 was left out of 0.55's window while 0.0 was kept in
    0.5's, so 7 of 63 frames averaged 20 frames instead of 21 (smoothed means off by up to 5e-4)."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=63)
    t = np.arange(63) * 0.05
    sm = smooth_probabilities(t, probs, window_s=1.0)
    want = np.array([probs[max(0, i - 10):i + 11].mean(axis=0) for i in range(63)])  # 10 frames either side
    np.testing.assert_allclose(sm, want / want.sum(axis=1, keepdims=True), atol=1e-12)


def test_a_video_not_timed_in_every_frame_has_no_seconds_in_the_summary_or_the_report():
    """Frames 0-2 without timestamps, 3-9 at 25 fps: the summary gave 0.12-0.36 s from the timed frames alone,
    while the chart and the report's timeline count such a video as frame / 30 (0-0.3 s), and the report's card
    said "seen 0.12-0.36 s" under that axis. A video with no timestamps at all had empty seconds already."""
    from fer_batch.report import build_report

    import dataclasses

    recs = [FaceRecord("v.mp4", "video", i, None if i < 3 else i / 25, 0, 0, 0, 5, 5, 0.9, _p(3)) for i in range(10)]
    for rows in (_timeline(recs), _timeline([dataclasses.replace(r, time_s=None) for r in recs])):
        s = summarize(rows)
        assert len(s) == 2 and s[["first_s", "last_s", "seconds_seen"]].isna().all().all(), s
        page = build_report(rows, [], settings={}, line="", paths={})
        assert "seen in frames 0-9 (10 analysed frames)" in page and " s (10 analysed frames" not in page


def test_the_reports_seconds_seen_is_the_summarys():
    """31 frames at a step of 0.04999999999999982 s: 1.55 s in the summary, "~1.5 s" in the report's card (1.55
    unrounded is 1.5499999999999945)."""
    from fer_batch.report import build_report

    step = 0.04999999999999982  # as a real clip's timestamps gave it
    recs = [FaceRecord("v.mp4", "video", i, i * step, 0, 0, 0, 5, 5, 0.9, _p(3)) if i < 31
            else FaceRecord("v.mp4", "video", i, i * step) for i in range(63)]
    rows = _timeline(recs)
    rows["time_s"] = np.arange(63) * step  # unrounded, as a library caller's table may hold them
    assert summarize(rows).seconds_seen.iloc[0] == 1.55
    assert "(31 analysed frames, ~1.6 s)" in build_report(rows, [], settings={}, line="", paths={})


def test_a_tie_in_the_shares_is_listed_in_the_order_that_picks_the_headline():
    from fer_batch.report import build_report

    recs = [FaceRecord("v.mp4", "video", i, i / 5, 0, 0, 0, 10, 10, 0.9, _p(k)) for i, k in enumerate((5, 0, 2, 4))]
    page = build_report(_timeline(recs), [], settings={}, line="", paths={})
    assert "1 face, mostly angry</span>" in page
    assert "top emotion of 4 face detections: angry 25%, fear 25%, sad 25%, surprise 25%" in page
