"""The run's HTML report (``--report FILE.html``): one self-contained page, built from the timeline after the run.

Everything is inline (CSS, SVG charts, JPEG thumbnails as data URIs); there is no script and no network resource.
Sources appear in the timeline's order, in collapsible sections grouped into pages of :data:`PAGE` sources, so a
run of a thousand files stays one page a browser opens at once (only the opened sections are laid out).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .config import check_report_path
from .errors import UsageError
from .labels import EMOTIONS
from .wording import count, shown_name

PAGE = 100  # sources per collapsible page
OPEN_ALL_UP_TO = 20  # runs with at most this many sources show every source opened
TIMELINE_POINTS = 200  # a face's timeline is averaged down to about this many points
#: Faces that get thumbnails in one report (about 8 kB each, and a decode of their frame while the report is built):
#: 3,000 make about 32 MB of page. The faces after them keep their cards without pictures, so an archive of ten
#: thousand files still makes a page a browser opens (and in minutes rather than most of an hour).
THUMBNAIL_FACES = 3000

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#f6f6f6}
main{max-width:1180px;margin:0 auto;padding:16px 24px;background:#fff}
h1{font-size:22px;margin:4px 0 8px}h2{font-size:18px;margin:20px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:4px 0;max-width:100%}td,th{padding:2px 10px 2px 0;text-align:left;
vertical-align:top;overflow-wrap:anywhere}th{color:#555;font-weight:600;white-space:nowrap}
table.fail{table-layout:fixed;width:100%}table.fail th:first-child{width:45%}
.line{font-weight:600}.muted{color:#666}.legend span{display:inline-block;margin-right:12px;white-space:nowrap}
.sw{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;border-radius:2px}
details.page>summary{font-weight:600;font-size:15px;margin:8px 0;cursor:pointer}
details.src{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:4px 10px}
details.src>summary{cursor:pointer;overflow-wrap:anywhere}.src .name{font-weight:600}
.faces{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0}
.face{display:flex;gap:8px;border:1px solid #eee;border-radius:4px;padding:6px;max-width:100%;box-sizing:border-box}
.face img{height:96px;display:block}.face .info{min-width:170px;max-width:260px}
.shares{display:flex;height:10px;width:200px;margin:4px 0;border-radius:2px;overflow:hidden;background:#eee}.shares i{display:block;height:100%}
svg{display:block;max-width:100%;height:auto}.fail td:first-child{font-weight:600}
"""


def _e(text) -> str:
    return html.escape(shown_name(str(text)), quote=True)


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _colours() -> dict[str, str]:
    from .charts import COLORS

    return COLORS


def _legend() -> str:
    c = _colours()
    return '<p class="legend">' + "".join(f'<span><i class="sw" style="background:{c[e]}"></i>{e}</span>'
                                          for e in EMOTIONS) + "</p>"


def _shares_bar(shares: np.ndarray, label: str) -> str:
    """A bar of ``shares`` (summing to 1) and, under it, ``label: `` with the shares of 5% or more."""
    c = _colours()
    parts = "".join(f'<i style="width:{100 * s:.1f}%;background:{c[e]}"></i>'
                    for e, s in zip(EMOTIONS, shares) if s > 0)
    text = f"{label}: {_top_text(shares)}"
    return f'<div class="shares" title="{_e(text)}">{parts}</div><div class="muted">{_e(text)}</div>'


def _top_text(shares: np.ndarray) -> str:
    # Largest first; a tie in the order of EMOTIONS, as argmax breaks it (the headline's "mostly angry" above a bar
    # of "angry 25%, fear 25%", not "fear 25%, angry 25%").
    top = sorted(((s, e) for e, s in zip(EMOTIONS, shares) if s >= 0.05), key=lambda se: -se[0])
    return ", ".join(f"{e} {100 * s:.0f}%" for s, e in top)


def _share_of(probs: np.ndarray) -> np.ndarray:
    return np.bincount(probs.argmax(axis=1), minlength=len(EMOTIONS)) / max(len(probs), 1)


def _binned(t: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average consecutive rows so a face's timeline has about TIMELINE_POINTS points."""
    k = int(np.ceil(len(t) / TIMELINE_POINTS))
    if k <= 1:
        return t, probs
    n = len(t) // k * k
    tb = t[:n].reshape(-1, k).mean(axis=1)
    pb = probs[:n].reshape(-1, k, probs.shape[1]).mean(axis=1)
    if n < len(t):
        tb = np.append(tb, t[n:].mean())
        pb = np.vstack([pb, probs[n:].mean(axis=0)])
    tb[0], tb[-1] = t[0], t[-1]  # the stretch keeps its extent: averaged ends stopped short of the axis's end
    return tb, pb


def _ticks(end: float, most: int = 8) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) from 0 to ``end``."""
    raw = end / most
    power = 10 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [round(k * step, 10) for k in range(int(end / step + 1e-9) + 1)]


def timeline_svg(rows, face_ids: list[int], smooth: float | None = None) -> str:
    """Stacked emotion probabilities over time, one band per face id, as inline SVG (gaps left empty); with
    ``smooth``, each face's probabilities averaged over that many seconds first, as the PNG charts do."""
    c = _colours()
    width, band, gap, left, bottom = 1000, 46, 8, 56, 22
    from .summary import face_stretches, time_axis

    timed, span, t_end = time_axis(rows)
    height = len(face_ids) * (band + gap) + bottom
    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="emotion timeline">']
    xs = lambda t: left + (width - left - 8) * t / t_end  # noqa: E731
    for i, fid in enumerate(face_ids):
        g = rows[rows["face_id"] == fid].sort_values("frame")
        y0 = i * (band + gap)
        out.append(f'<rect x="{left}" y="{y0}" width="{width - left - 8}" height="{band}" fill="#f1f1f1"/>'
                   f'<text x="0" y="{y0 + band / 2 + 5}" font-size="13">#{fid}</text>')
        for seg_t, seg_p in face_stretches(g, timed, span, smooth):
            seg_t, seg_p = _binned(seg_t, seg_p)  # a stretch of two points or more keeps two or more
            cum = np.hstack([np.zeros((len(seg_p), 1)), np.cumsum(seg_p, axis=1)])
            for k, e in enumerate(EMOTIONS):
                top = [f"{xs(x):.1f},{y0 + band * (1 - v):.1f}" for x, v in zip(seg_t, cum[:, k + 1])]
                low = [f"{xs(x):.1f},{y0 + band * (1 - v):.1f}" for x, v in zip(seg_t[::-1], cum[::-1, k])]
                out.append(f'<polygon fill="{c[e]}" points="{" ".join(top + low)}"/>')
    y = height - bottom
    for tv in _ticks(t_end):
        anchor = "end" if xs(tv) > width - 24 else "middle"  # the band's end: a centred label would be cut off
        out.append(f'<text x="{xs(tv):.0f}" y="{y + 16}" font-size="11" text-anchor="{anchor}" fill="#555">'
                   f'{tv:g} s</text>')
    out.append("</svg>")
    return "".join(out)


def distribution_svg(counts) -> str:
    """Share of all face detections per top emotion (``counts`` in EMOTIONS order), as inline SVG bars with their
    counts."""
    c = _colours()
    counts = np.asarray(counts, dtype=np.int64)
    total = max(int(counts.sum()), 1)
    width, height, bar = 700, 170, 80
    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="emotion distribution">']
    top = max(counts.max() / total, 0.05)
    for i, (e, n) in enumerate(zip(EMOTIONS, counts)):
        h = 120 * (n / total) / top
        x = 10 + i * (bar + 18)
        out.append(f'<rect x="{x}" y="{140 - h:.1f}" width="{bar}" height="{h:.1f}" fill="{c[e]}"/>'
                   f'<text x="{x + bar / 2}" y="{134 - h:.1f}" font-size="12" text-anchor="middle">'
                   f'{100 * n / total:.0f}% ({n})</text>'
                   f'<text x="{x + bar / 2}" y="158" font-size="12" text-anchor="middle">{e}</text>')
    out.append("</svg>")
    return "".join(out)


def _face_card(fid: int, g, media: str, thumbs: tuple[bytes, bytes] | None, step: float, timed: bool) -> str:
    from .summary import time_seen

    probs = g[list(EMOTIONS)].to_numpy(dtype=np.float64)
    dominant = EMOTIONS[int(probs.mean(axis=0).argmax())]
    frames = g["frame"].nunique()
    first, last, seconds = time_seen(g, timed, step) if media == "video" else (None, None, None)
    if first is not None:  # the summary's first_s, last_s and seconds_seen (none for one analysed frame)
        when = f"seen at {first:.2f} s" if first == last else f"seen {first:.2f}-{last:.2f} s"
        seen = f"{when} ({count(frames, 'analysed frame')}{f', ~{seconds:.1f} s' if seconds else ''})"
    elif media == "video":  # not timed: frame numbers, as the summary gives no seconds
        lo, hi = int(g["frame"].min()), int(g["frame"].max())
        seen = f"seen in frame {lo}" if lo == hi else f"seen in frames {lo}-{hi}"
        seen += f" ({count(frames, 'analysed frame')})"
    else:
        seen = count(frames, "frame")
    imgs = ""
    if thumbs is not None:
        imgs = (f'<img src="{_data_uri(thumbs[0])}" alt="face #{fid}, its most confident crop" '
                f'width="96" height="96">'
                f'<img src="{_data_uri(thumbs[1])}" alt="face #{fid} in its frame">')
    # A photo's face is one classification: its probabilities, not the share of frames (always 100%) it topped.
    if len(probs) == 1:
        bar = _shares_bar(probs[0], "probabilities")
    else:
        bar = (_shares_bar(_share_of(probs), f"top emotion in {len(probs)} frames") +
               f'<div class="muted">{_e("mean probabilities: " + _top_text(probs.mean(axis=0)))}</div>')
    return (f'<div class="face">{imgs}<div class="info"><b>#{fid}</b> · <b>{_e(dominant)}</b>'
            f'<div class="muted">{_e(seen)}</div>{bar}</div></div>')


def _source_section(name: str, rows, path: Path | None, opened: bool, bgr_colours, smooth: float | None,
                    thumbnails_left: int, thumbnail_faces: int) -> tuple[str, int]:
    """The source's HTML section and how many faces got thumbnails (at most ``thumbnails_left`` of the report's
    ``thumbnail_faces``)."""
    from .summary import has_times, least_frames, shown_faces, step_s, untimed_note

    media = rows["media"].iloc[0]
    faces = rows.dropna(subset=["face_id"])
    face_ids, fragments, more = shown_faces(rows)
    frames = rows["frame"].nunique()
    if faces.empty:
        headline = "no face found"
    else:
        # The emotion that came first most often, as the bar under the headline shows the shares of (the highest
        # mean probability can be another: 47% of a crowd's detections happy, 53% neutral).
        mostly = EMOTIONS[int(_share_of(faces[list(EMOTIONS)].to_numpy(dtype=np.float64)).argmax())]
        if face_ids:
            headline = f"{count(len(face_ids) + more, 'face')}, mostly {mostly}"
        else:  # only fragments: not "0 faces" above a bar of detections
            headline = f"no face tracked; {count(len(faces), 'face detection')}, mostly {mostly}"
    head = (f'<summary><span class="name">{_e(name)}</span> <span class="muted">· {media} · '
            f'{count(frames, "analysed frame")} · {_e(headline)}</span></summary>')
    body = []
    if len(faces) > 1:  # one face's card below says it all
        body.append(_shares_bar(_share_of(faces[list(EMOTIONS)].to_numpy(dtype=np.float64)),
                                f"top emotion of {count(len(faces), 'face detection')}"))
    if more:
        body.append(f'<p class="muted">The {len(face_ids)} faces seen in the most frames are shown; '
                    f'{count(more, "more tracked face")} not (the summary CSV lists every face).</p>')
    if fragments:
        body.append(f'<p class="muted">{count(fragments, "short fragment")} (face ids seen in '
                    f'fewer than {least_frames(rows)} analysed frames) left out.</p>')
    if media == "video" and face_ids:
        if not has_times(rows):  # as the PNG chart's axis says it
            body.append(f'<p class="muted">time {_e(untimed_note())}</p>')
        if smooth:
            body.append(f'<p class="muted">probabilities smoothed over {smooth:g} s</p>')
        body.append(timeline_svg(rows, face_ids, smooth))
    thumbs = {}
    if face_ids and path is not None and thumbnails_left > 0:
        wanted = {}
        for fid in face_ids[:thumbnails_left]:
            g = faces[faces["face_id"] == fid]
            best = g.loc[g["confidence"].idxmax()]
            t = float(best["time_s"])
            wanted[fid] = (int(best["frame"]), (int(best["x"]), int(best["y"]), int(best["w"]), int(best["h"])),
                           best["emotion"], t if np.isfinite(t) else None)
        try:
            from .thumbs import face_thumbnails

            thumbs = face_thumbnails(path, media, wanted, bgr_colours)
        except Exception as exc:  # a file gone or changed since the run: the report still lists its figures
            body.append(f'<p class="muted">thumbnails unavailable ({_e(type(exc).__name__)}: {_e(exc)})</p>')
    if face_ids and path is not None and len(face_ids) > thumbnails_left:
        which = f"the first {thumbnails_left} faces" if thumbnails_left > 0 else "no face"
        body.append(f'<p class="muted">Thumbnails for {which} here: a report holds those of its first '
                    f'{count(thumbnail_faces, "face")}, to stay small enough to open.</p>')
    timed = has_times(rows)
    step = step_s(rows, timed) if media == "video" else 0.0
    if face_ids:
        body.append('<div class="faces">' + "".join(
            _face_card(fid, faces[faces["face_id"] == fid], media, thumbs.get(fid), step, timed)
            for fid in face_ids)
            + "</div>")
    return f'<details class="src"{" open" if opened else ""}>{head}{"".join(body)}</details>', len(thumbs)


def build_report(timeline, errors, *, settings: dict, line: str, paths: dict[str, Path],
                 smooth: float | None = None, between=None, thumbnails: int = THUMBNAIL_FACES) -> str:
    """The report's HTML text (:func:`report_parts` joined)."""
    return "\n".join(report_parts(timeline, errors, settings=settings, line=line, paths=paths, smooth=smooth,
                                   between=between, thumbnails=thumbnails))


def report_parts(timeline, errors, *, settings: dict, line: str, paths: dict[str, Path],
                 smooth: float | None = None, between=None, thumbnails: int = THUMBNAIL_FACES) -> Iterator[str]:
    """The report's HTML, a part at a time (a source's section is one part). ``timeline``: the run's timeline (a
    DataFrame from :func:`~fer_batch.timeline.read_timeline`, a timeline CSV's path, or a
    :class:`~fer_batch.timeline.Timeline`; a file is read one source at a time, after a first pass for the totals);
    ``errors``: (source, reason) pairs; ``paths``: source name -> its file (for thumbnails); ``smooth``: seconds
    the videos' timelines are smoothed over (``--smooth``); ``between`` is called before each source's section (a
    run checks there whether it was asked to stop); ``thumbnails``: how many faces, first come, get thumbnails."""
    from .overlay import bgr_colours
    from .timeline import as_timeline

    if thumbnails < 0:
        raise UsageError(f"thumbnails must be 0 or more, got {thumbnails}")
    colours = bgr_colours()
    timeline = as_timeline(timeline)
    totals = timeline.totals()
    # (source, reason) pairs, or the SourceDone failures that analyze(errors=[...]) collects
    errors = [(e.source, e.error) if hasattr(e, "error") and hasattr(e, "source") else tuple(e) for e in errors]
    out = ['<!doctype html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>fer-batch report</title><style>{CSS}</style></head><body><main>",
           "<h1>fer-batch report</h1>", f'<p class="line">{_e(line)}</p>', "<table>"]
    for key, value in settings.items():
        if value is None or value == [] or value == ():
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        out.append(f"<tr><th>{_e(key)}</th><td>{_e(shown)}</td></tr>")
    out.append("</table>")
    out.append(f'<h2 id="failures">Failures ({len(errors)})</h2>')
    if errors:
        out.append('<table class="fail"><tr><th>source</th><th>reason</th></tr>' + "".join(
            f"<tr><td>{_e(s)}</td><td>{_e(r)}</td></tr>" for s, r in errors) + "</table>")
    else:
        out.append('<p class="muted">none</p>')
    detections = totals.face_detections
    every = "all " if detections > 1 else ""
    out.append(f'<h2 id="distribution">Top emotion of {every}{count(detections, "face detection")} (a face in '
               'each analysed frame counts once)</h2>')
    out.append(distribution_svg(totals.emotion_counts()) + _legend())
    out.append(f'<h2 id="sources">Sources with results ({totals.sources})</h2>')
    yield from out
    opened = totals.sources <= OPEN_ALL_UP_TO
    thumbnails_left = thumbnails
    for i, (name, rows) in enumerate(timeline.by_source()):
        if i % PAGE == 0:
            if i:
                yield "</details>"
            yield (f'<details class="page"{" open" if i == 0 else ""}><summary>sources {i + 1}-'
                   f'{min(i + PAGE, totals.sources)}</summary>')
        if between is not None:
            between()
        section, drawn = _source_section(name, rows, paths.get(name), opened, colours, smooth, thumbnails_left,
                                         thumbnails)
        thumbnails_left -= drawn
        yield section
    if totals.sources:
        yield "</details>"
    yield "</main></body></html>\n"


def write_report(path: str | Path, timeline, errors, *, settings: dict, line: str, paths: dict[str, Path],
                 smooth: float | None = None, between=None, thumbnails: int = THUMBNAIL_FACES) -> Path:
    """Write :func:`report_parts` to ``path`` as they come (through a temporary file, so a reader never sees
    half); ``timeline`` as :func:`report_parts` takes it."""
    path = Path(path)
    check_report_path("write_report(path=...)", path)  # as --report is checked
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            for i, part in enumerate(report_parts(timeline, errors, settings=settings, line=line, paths=paths,
                                                  smooth=smooth, between=between, thumbnails=thumbnails)):
                f.write(("\n" if i else "") + part)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
