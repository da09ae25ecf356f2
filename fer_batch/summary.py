"""Per-source, per-face summaries computed from a timeline CSV (so they work on resumed runs too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UsageError
from .labels import EMOTIONS
from .timeline import as_timeline, read_timeline  # noqa: F401  (read_timeline: public here since the first release)

SUMMARY_COLUMNS: tuple[str, ...] = (
    "source", "media", "face_id", "frames_analysed", "frames_with_face", "first_s", "last_s", "seconds_seen",
    "dominant_emotion",
    *(f"mean_{e}" for e in EMOTIONS), *(f"share_{e}" for e in EMOTIONS),
)
#: With ``--smooth``: the same dominant emotion, means and shares, computed after temporal smoothing.
SMOOTHED_COLUMNS: tuple[str, ...] = (
    "smoothed_dominant_emotion", *(f"smoothed_mean_{e}" for e in EMOTIONS), *(f"smoothed_share_{e}" for e in EMOTIONS),
)


#: A face id seen in fewer analysed frames than this is a fragment (a false detection, a face crossing the edge),
#: left out of the charts and the report's face strips (and counted there) -- unless it is in half or more of them.
MIN_TRACK_FRAMES = 3


#: Charts and the report draw at most this many faces of a source: a crowd video can track hundreds, and a panel
#: each made a chart 78,000 px tall that took 19 minutes to draw (600 faces). The summary lists every face.
MAX_FACES_SHOWN = 32


def _tracked(rows):
    """Per tracked face id of one source's rows (see :func:`tracked_faces`): its first analysed frame ("min") and
    how many it was seen in ("nunique"), in order of first appearance; and how many fragments were left out."""
    faces = rows.dropna(subset=["face_id"])
    seen = faces.groupby("face_id", sort=False)["frame"].agg(["min", "nunique"]).sort_values("min", kind="stable")
    tracked = seen[seen["nunique"] >= least_frames(rows)]
    return tracked, len(seen) - len(tracked)


def least_frames(rows) -> int:
    """The analysed frames a face id of one source must be seen in to be tracked: :data:`MIN_TRACK_FRAMES`, or
    half of the source's analysed frames where that is fewer, and 1 in a photo."""
    # A photo has one frame: all its faces count. A sparsely sampled clip (--fps 0.5 over a few seconds) has too few
    # analysed frames for the rule: a face in half of them or more is someone on screen, not a flicker.
    return 1 if rows["media"].iloc[0] == "image" else min(MIN_TRACK_FRAMES, -(-rows["frame"].nunique() // 2))


def tracked_faces(rows) -> tuple[list[int], int]:
    """The face ids of one source's timeline rows seen in at least :data:`MIN_TRACK_FRAMES` analysed frames, or in
    at least half of them, in order of first appearance, and how many shorter fragments were left out."""
    tracked, fragments = _tracked(rows)
    return [int(f) for f in tracked.index], fragments


def shown_faces(rows, most: int = MAX_FACES_SHOWN) -> tuple[list[int], int, int]:
    """What charts and the report draw of one source: (face ids, fragments left out, tracked faces left out). The
    ids are :func:`tracked_faces`'s, cut to the ``most`` seen in the most analysed frames (the first to appear
    among equals), still in order of first appearance."""
    if most < 1:
        raise UsageError(f"most must be at least 1, got {most}")
    tracked, fragments = _tracked(rows)
    if len(tracked) <= most:
        return [int(f) for f in tracked.index], fragments, 0
    order = np.argsort(-tracked["nunique"].to_numpy(), kind="stable")[:most]
    return [int(f) for f in tracked.index[np.sort(order)]], fragments, len(tracked) - most


def step_s(frame_rows, timed: bool | None = None) -> float:
    """Seconds between analysed frames of a video (median), the time each analysed frame stands for, on the video's
    time base (:func:`face_times`; ``timed``: :func:`has_times` of the video, found when None); 0.0 for a video
    analysed in one frame."""
    return _median_step(np.unique(face_times(frame_rows, timed)))


def _median_step(t: np.ndarray) -> float:
    """The median step between sorted, distinct times ``t``; 0.0 for one."""
    return float(np.median(np.diff(t))) if len(t) > 1 else 0.0


def time_seen(g, timed: bool, step: float) -> tuple[float | None, float | None, float | None]:
    """(first_s, last_s, seconds_seen) of a face's (or a whole file's) rows ``g`` of a video: seconds_seen is its
    analysed frames times ``step`` (:func:`step_s`), None for a video analysed in one frame (no interval to count:
    unknown, not 0). All None where the video's frames are not all timed (``timed``, :func:`has_times`): its chart
    and the report's timeline count such a video as frame / 30, an estimate a table would give as if measured, and
    the times of only its timed frames would be on another scale than that chart."""
    if not timed:
        return None, None, None
    t = g["time_s"].to_numpy(dtype=np.float64)
    frames = g["frame"].nunique()
    # Rounded once, here, so the summary CSV and the report's cards show one figure (31 x 0.0499999 is 1.55, not 1.5).
    return round(float(t.min()), 4), round(float(t.max()), 4), (round(frames * step, 4) if step > 0 else None)


def _stats(g, probs: np.ndarray, media: str, step: float, smoothed: np.ndarray | None, timed: bool) -> dict:
    """The figures of one summary row from a face's (or a whole file's) timeline rows and probabilities."""
    mean = probs.mean(axis=0)
    share = np.bincount(probs.argmax(axis=1), minlength=len(EMOTIONS)) / len(probs)
    frames = g["frame"].nunique()
    row = {"frames_with_face": frames, "dominant_emotion": EMOTIONS[int(mean.argmax())]}
    if media == "video":
        row.update(zip(("first_s", "last_s", "seconds_seen"), time_seen(g, timed, step)))
    row.update({f"mean_{e}": round(float(mean[i]), 6) for i, e in enumerate(EMOTIONS)})
    row.update({f"share_{e}": round(float(share[i]), 6) for i, e in enumerate(EMOTIONS)})
    if smoothed is not None:
        s_mean = smoothed.mean(axis=0)
        s_share = np.bincount(smoothed.argmax(axis=1), minlength=len(EMOTIONS)) / len(smoothed)
        # Defined as the unsmoothed column is (highest mean probability), so the two can be compared.
        row["smoothed_dominant_emotion"] = EMOTIONS[int(s_mean.argmax())]
        row.update({f"smoothed_mean_{e}": round(float(s_mean[i]), 6) for i, e in enumerate(EMOTIONS)})
        row.update({f"smoothed_share_{e}": round(float(s_share[i]), 6) for i, e in enumerate(EMOTIONS)})
    return row


def smooth_probabilities(times: np.ndarray, probs: np.ndarray, window_s: float) -> np.ndarray:
    """Centred moving average of probabilities over ``window_s`` seconds of video time (rows stay normalised)."""
    out = np.empty_like(probs)
    # Both edges count, whatever the float rounding of t +- S/2 (0.55 - 0.5 is 0.05000000000000004, which left out
    # the frame at 0.05): a microsecond of slack, far below any frame interval.
    half = window_s / 2.0 + 1e-6
    lo = np.searchsorted(times, times - half, side="left")
    hi = np.searchsorted(times, times + half, side="right")
    csum = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    counts = (hi - lo)[:, None]
    out[:] = (csum[hi] - csum[lo]) / counts
    return out / out.sum(axis=1, keepdims=True)


def summarize(timeline, smooth: float | None = None):
    """One row per source and face id, then, for a video, one whole-file row (empty face_id) pooling all its faces:
    "the mood of this clip". A source where no face was found has only that row (for a photo too).

    ``timeline``: a DataFrame (:func:`read_timeline`), a timeline CSV's path (read one source at a time), or a
    :class:`~fer_batch.timeline.Timeline`."""
    import pandas as pd

    if smooth is not None:
        from .config import check_smoothing

        check_smoothing(smooth, "smooth")
    rows = []
    for source, frame_rows in as_timeline(timeline).by_source():
        media = frame_rows["media"].iloc[0]
        base = {"source": source, "media": media, "frames_analysed": frame_rows["frame"].nunique()}
        # In time order: smoothing looks up neighbours by time (a library caller's table may come in any order).
        faces = frame_rows.dropna(subset=["face_id"]).sort_values("frame", kind="stable")
        if faces.empty:
            rows.append({**base, "face_id": None, "frames_with_face": 0, "dominant_emotion": None})
            continue
        timed = has_times(frame_rows)
        step = step_s(frame_rows, timed) if media == "video" else 0.0
        pooled, pooled_smoothed = [], []
        for face_id, g in faces.groupby("face_id", sort=True):
            probs = g[list(EMOTIONS)].to_numpy(dtype=np.float64)
            sm = None
            if smooth is not None:
                sm = smooth_probabilities(face_times(g, timed), probs, smooth) if media == "video" else probs
                pooled_smoothed.append(sm)
            pooled.append(probs)
            rows.append({**base, "face_id": int(face_id), **_stats(g, probs, media, step, sm, timed)})
        if media == "video":
            sm = np.concatenate(pooled_smoothed) if smooth is not None else None
            rows.append({**base, "face_id": None, **_stats(faces, np.concatenate(pooled), media, step, sm, timed)})
    columns = list(SUMMARY_COLUMNS) + (list(SMOOTHED_COLUMNS) if smooth is not None else [])
    df = pd.DataFrame(rows, columns=columns)
    df["face_id"] = df["face_id"].astype("Int64")
    return df


def has_times(rows) -> bool:
    """Whether every row of a video has a usable timestamp; else all its rows are timed by frame number
    (:func:`face_times`)."""
    return bool(np.all(np.isfinite(rows["time_s"].to_numpy(dtype=np.float64))))


def untimed_note() -> str:
    """What the time axis of a video without timestamps counts, as its chart and the report say it."""
    from .sources import NO_TIMESTAMP_FPS

    return f"counted as frame / {NO_TIMESTAMP_FPS:g}: the video has no timestamps"


def face_times(g, timed: bool | None = None) -> np.ndarray:
    """Seconds of a video's rows: their timestamps, or frame / NO_TIMESTAMP_FPS for a video without usable ones
    (the convention --fps sampling counts by), so that smoothing over seconds means the same in both.

    ``timed``: :func:`has_times` of the whole video, for rows that are part of it. One time base a video: a video
    whose first frames have no timestamps (as some streams start) counts all its rows by frame number, so that a
    face seen only later is not drawn, or smoothed, on another scale than the axis and the faces beside it."""
    from .sources import NO_TIMESTAMP_FPS

    if timed is None:
        timed = has_times(g)
    if timed:
        return g["time_s"].to_numpy(dtype=np.float64)
    return g["frame"].to_numpy(dtype=np.float64) / NO_TIMESTAMP_FPS


def time_axis(rows) -> tuple[bool, float, float]:
    """(timed, span, end) of one video's time axis, as its chart and the report draw it: whether its rows have
    timestamps (:func:`has_times`), the seconds an analysed frame stands for (the median step between analysed
    frames; 1 s for a video analysed in one frame), and the axis's end, the last analysed frame's time plus its
    span (it stands for the time after it)."""
    timed = has_times(rows)
    t = np.unique(face_times(rows, timed))
    span = _median_step(t) or 1.0  # (as step_s, the seconds_seen step)
    return timed, span, float(t.max()) + span


def face_stretches(g, timed: bool, span: float, smooth: float | None = None):
    """(times, probabilities) of each stretch of one face's rows (``g``, in frame order) on screen, as charts and
    the report draw them: split where the face is out of view for over three of its usual steps, so a gap stays
    empty instead of being bridged; each stretch runs on to the end of the time its last frame stands for (the face's
    own step, or the video's ``span`` for a face seen in one analysed frame). With ``smooth``, its probabilities are
    averaged over that many seconds first."""
    t = face_times(g, timed)
    probs = g[list(EMOTIONS)].to_numpy(dtype=np.float64)
    if smooth:
        probs = smooth_probabilities(t, probs, smooth)
    dt = np.diff(t)
    step = np.median(dt) if len(dt) else span
    breaks = np.flatnonzero(dt > 3 * step) + 1
    for seg_t, seg_p in zip(np.split(t, breaks), np.split(probs, breaks)):
        # Each analysed frame stands for the step after it, as seconds_seen counts it: a stretch ends a step after
        # its last frame (a face in every frame fills its band; one analysed frame is a column a step wide). At most
        # the video's own step: a face seen every other frame would run past the axis's end.
        yield np.append(seg_t, seg_t[-1] + min(step, span)), np.vstack([seg_p, seg_p[-1:]])


def save_summary(df, summary_path: str | Path) -> None:
    """Write a :func:`summarize` table as CSV, with CRLF rows like the timeline and errors CSVs (Python's csv
    default, RFC 4180), so a run's files read the same everywhere."""
    df.to_csv(summary_path, index=False, encoding="utf-8", errors="surrogateescape", lineterminator="\r\n")
