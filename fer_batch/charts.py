"""Charts of a run (matplotlib on the headless Agg canvas): a timeline per video, an overall distribution."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .labels import EMOTIONS
from .wording import count, shortened, shown_name

#: One colour per emotion, the same in every chart.
COLORS = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#f2b705",
          "sad": "#1f77b4", "surprise": "#ff7f0e", "neutral": "#7f7f7f"}


def _figure(**kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


DISTRIBUTION_PNG = "emotion_distribution.png"


def chart_name(source: str, used: set[str]) -> str:
    """A file-system-safe, unique PNG name derived from the source path."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.strip("/")).strip("._") or "source"
    stem = stem[-120:].lstrip("._") or "source"  # the cut may start at a dot: not a hidden file
    name = f"{stem}.png"
    if name in used:
        name = f"{stem}-{hashlib.sha1(source.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}.png"
    used.add(name)
    return name


def chart_names(sources) -> dict[str, str]:
    """:func:`chart_name` of each source, given in sorted order: two sources whose names clean up alike get the same
    PNGs whichever of them a run (with --workers, say) wrote first."""
    used = {DISTRIBUTION_PNG}
    return {source: chart_name(source, used) for source in sorted(set(sources))}


def plot_video_timeline(source: str, rows, path: Path, smooth: float | None = None) -> Path:
    """:func:`timeline_figure` saved as a PNG at ``path``."""
    timeline_figure(source, rows, smooth).savefig(path, dpi=100)
    return path


def timeline_figure(source: str, rows, smooth: float | None = None):
    """Emotion probabilities over time, one panel per face id tracked for a meaningful time (in order of first
    appearance; at most :data:`~fer_batch.summary.MAX_FACES_SHOWN`, those seen longest); fragments seen in fewer
    analysed frames and the faces beyond that many are counted in the title instead."""
    from .summary import face_stretches, least_frames, shown_faces, time_axis, untimed_note

    faces = rows.dropna(subset=["face_id"])
    face_ids, fragments, more = shown_faces(rows)
    n = max(len(face_ids), 1)
    fig = _figure(figsize=(10, (2.4 if n <= 4 else 1.3) * n + 0.8), layout="constrained")
    axes = [fig.add_subplot(n, 1, i + 1) for i in range(n)]
    timed, span, t_end = time_axis(rows)
    if not face_ids:
        axes[0].text(0.5, 0.5, "no face tracked" if fragments else "no face found", ha="center", va="center",
                     transform=axes[0].transAxes)
    for ax, fid in zip(axes, face_ids):
        g = faces[faces["face_id"] == fid].sort_values("frame")
        for seg_t, seg_p in face_stretches(g, timed, span, smooth):
            ax.stackplot(seg_t, seg_p.T, colors=[COLORS[e] for e in EMOTIONS], alpha=0.9, linewidth=0)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"face {int(fid)}\nprobability")
        ax.grid(alpha=0.2)
    for ax in axes:  # the video's length, also when no face was tracked in it
        ax.set_xlim(0, t_end)
    axes[-1].set_xlabel("time (s)" if timed else f"time (s), {untimed_note()}")
    from matplotlib.patches import Patch

    handles = [Patch(color=COLORS[e], label=e) for e in EMOTIONS]
    fig.legend(handles=handles, loc="outside lower center", ncols=7, frameon=False)
    # About what a 10-inch figure holds at 10 pt; the start kept too, which tells two long names in folders apart.
    title = shortened(shown_name(source), 110, head=36)
    title += f" (smoothed over {smooth:g} s)" if smooth else ""
    if more:
        title += f"\nthe {len(face_ids)} faces seen longest; {count(more, 'more tracked face')} not shown"
    if fragments:
        title += (f"\n{count(fragments, 'short fragment')} (face ids seen in fewer than "
                  f"{least_frames(rows)} analysed frames) not shown")
    fig.suptitle(title, fontsize=10, parse_math=False)  # a file name is text: "a$^$b.mp4" is no formula
    return fig


def plot_distribution(timeline, path: Path) -> Path:
    """Share of analysed faces per predicted emotion across all sources (images and video frames alike).
    ``timeline``: as :func:`write_charts` takes it, or its :class:`~fer_batch.timeline.Totals` already counted."""
    import pandas as pd

    from .timeline import Totals, as_timeline

    totals = timeline if isinstance(timeline, Totals) else as_timeline(timeline).totals()
    counts = pd.Series(totals.emotion_counts(), index=list(EMOTIONS))
    total = int(counts.sum())
    fig = _figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    shares = counts / total if total else counts.astype(float)
    bars = ax.bar(list(EMOTIONS), shares, color=[COLORS[e] for e in EMOTIONS])
    for bar, c in zip(bars, counts):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), str(int(c)), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("share of faces")
    ax.set_title(f"Emotions across {count(totals.sources, 'source')}, {count(total, 'face detection')}")
    ax.set_ylim(0, max(float(shares.max()) * 1.15 if total else 1.0, 0.05))
    fig.savefig(path, dpi=100)
    return path


def write_charts(timeline, directory: str | Path, smooth: float | None = None, between=None,
                 on_written=None) -> list[Path]:
    """A timeline PNG per video source and ``emotion_distribution.png``; returns the files written. ``between`` is
    called before each source's chart (a run checks there whether it was asked to stop), ``on_written`` with each
    file as soon as it is written (a run records it there, so that one stopped half-way still knows its charts:
    :mod:`~fer_batch.output_files`). ``timeline``: a DataFrame
    (:func:`~fer_batch.timeline.read_timeline`), a timeline CSV's path or a :class:`~fer_batch.timeline.Timeline`;
    a file is read one source at a time, and the distribution is counted on the way."""
    from .config import check_not_foreign, check_smoothing
    from .sources import mark_output_dir
    from .timeline import as_timeline

    timeline = as_timeline(timeline)
    directory = Path(directory)
    if smooth is not None:
        check_smoothing(smooth, "smooth")
    check_not_foreign("write_charts(directory=...)", directory)  # as the CLI refuses such a --charts
    mark_output_dir(directory)
    names = chart_names(source for source, media in timeline.media() if media == "video")
    written = []
    for source, rows in timeline.by_source():
        if between is not None:
            between()
        if rows["media"].iloc[0] != "video":
            continue
        written.append(plot_video_timeline(source, rows, directory / names[source], smooth=smooth))
        if on_written is not None:
            on_written(written[-1])
    written.append(plot_distribution(timeline.totals(), directory / DISTRIBUTION_PNG))
    if on_written is not None:
        on_written(written[-1])
    return written
