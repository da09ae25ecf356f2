"""Per-source, per-face summaries computed from a timeline CSV (so they work on resumed runs too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .labels import EMOTIONS

SUMMARY_COLUMNS: tuple[str, ...] = (
    "source", "media", "face_id", "frames_analysed", "frames_with_face", "dominant_emotion",
    *(f"mean_{e}" for e in EMOTIONS), *(f"share_{e}" for e in EMOTIONS),
)
#: With ``--smooth``: the same dominant emotion, means and shares, computed after temporal smoothing.
SMOOTHED_COLUMNS: tuple[str, ...] = (
    "smoothed_dominant_emotion", *(f"smoothed_mean_{e}" for e in EMOTIONS), *(f"smoothed_share_{e}" for e in EMOTIONS),
)


def read_timeline(path: str | Path):
    """The timeline CSV as a DataFrame with its documented dtypes (source names kept exactly as written)."""
    import pandas as pd

    return pd.read_csv(path, dtype={"source": str, "media": str, "emotion": str}, keep_default_na=False,
                       na_values={c: [""] for c in ("time_s", "face_id", "x", "y", "w", "h", "det_score",
                                                   "confidence", *EMOTIONS)}, encoding="utf-8",
                       encoding_errors="surrogateescape")


def smooth_probabilities(times: np.ndarray, probs: np.ndarray, window_s: float) -> np.ndarray:
    """Centred moving average of probabilities over ``window_s`` seconds of video time (rows stay normalised)."""
    out = np.empty_like(probs)
    half = window_s / 2.0
    lo = np.searchsorted(times, times - half, side="left")
    hi = np.searchsorted(times, times + half, side="right")
    csum = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    counts = (hi - lo)[:, None]
    out[:] = (csum[hi] - csum[lo]) / counts
    return out / out.sum(axis=1, keepdims=True)


def summarize(timeline, smooth: float | None = None):
    """One row per source and face id (plus one with empty face_id for a source where no face was found)."""
    import pandas as pd

    rows = []
    for source, frame_rows in timeline.groupby("source", sort=False):
        media = frame_rows["media"].iloc[0]
        frames_analysed = frame_rows["frame"].nunique()
        faces = frame_rows.dropna(subset=["face_id"])
        if faces.empty:
            row = {"source": source, "media": media, "face_id": None, "frames_analysed": frames_analysed,
                   "frames_with_face": 0, "dominant_emotion": None}
            rows.append(row)
            continue
        for face_id, g in faces.groupby("face_id", sort=True):
            probs = g[list(EMOTIONS)].to_numpy(dtype=np.float64)
            mean = probs.mean(axis=0)
            labels = probs.argmax(axis=1)
            share = np.bincount(labels, minlength=len(EMOTIONS)) / len(labels)
            row = {"source": source, "media": media, "face_id": int(face_id), "frames_analysed": frames_analysed,
                   "frames_with_face": g["frame"].nunique(), "dominant_emotion": EMOTIONS[int(mean.argmax())]}
            row.update({f"mean_{e}": round(float(mean[i]), 6) for i, e in enumerate(EMOTIONS)})
            row.update({f"share_{e}": round(float(share[i]), 6) for i, e in enumerate(EMOTIONS)})
            if smooth is not None:
                t = g["time_s"].to_numpy(dtype=np.float64)
                if media == "video" and np.all(np.isfinite(t)):
                    sm = smooth_probabilities(t, probs, smooth)
                else:
                    sm = probs
                s_mean = sm.mean(axis=0)
                s_share = np.bincount(sm.argmax(axis=1), minlength=len(EMOTIONS)) / len(sm)
                # Defined as the unsmoothed column is (highest mean probability), so the two can be compared.
                row["smoothed_dominant_emotion"] = EMOTIONS[int(s_mean.argmax())]
                row.update({f"smoothed_mean_{e}": round(float(s_mean[i]), 6) for i, e in enumerate(EMOTIONS)})
                row.update({f"smoothed_share_{e}": round(float(s_share[i]), 6) for i, e in enumerate(EMOTIONS)})
            rows.append(row)
    columns = list(SUMMARY_COLUMNS) + (list(SMOOTHED_COLUMNS) if smooth is not None else [])
    df = pd.DataFrame(rows, columns=columns)
    df["face_id"] = df["face_id"].astype("Int64")
    return df


def save_summary(df, summary_path: str | Path) -> None:
    """Write a :func:`summarize` table as CSV, with CRLF rows like the timeline and errors CSVs (Python's csv
    default, RFC 4180), so a run's files read the same everywhere."""
    df.to_csv(summary_path, index=False, encoding="utf-8", errors="surrogateescape", lineterminator="\r\n")


def write_summary(timeline_path: str | Path, summary_path: str | Path, smooth: float | None = None):
    """Summarise a timeline CSV into ``summary_path``; returns the summary DataFrame."""
    df = summarize(read_timeline(timeline_path), smooth=smooth)
    save_summary(df, summary_path)
    return df
