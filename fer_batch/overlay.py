"""Drawing a frame's results on its pixels: box, face id, top emotion and probability, a seven-bar chart.

Sizes follow the frame (text stays readable from 360p to 4K) and the face (a large face gets a larger label, up to
a cap). Colours are the charts' emotion colours (:data:`fer_batch.charts.COLORS`). Drawing is in place, on BGR
uint8 pixels, with OpenCV.
"""

from __future__ import annotations

import numpy as np

from .labels import EMOTIONS
from .records import FaceRecord

FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
SHORT = {"angry": "ang", "disgust": "dis", "fear": "fea", "happy": "hap", "sad": "sad", "surprise": "sur",
         "neutral": "neu"}


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    v = hex_colour.lstrip("#")
    return int(v[4:6], 16), int(v[2:4], 16), int(v[0:2], 16)


def bgr_colours() -> dict[str, tuple[int, int, int]]:
    """Each emotion's colour (the charts' and the report's) as OpenCV's BGR, for drawing on frames."""
    from .charts import COLORS

    return {e: _bgr(COLORS[e]) for e in EMOTIONS}


def _ink_on(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on a ``bgr`` background."""
    b, g, r = bgr
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def text_scale(frame_shape: tuple[int, ...], face_h: int | None = None) -> float:
    """OpenCV font scale: about 2.2% of the frame's shorter side (0.4, ~9 px tall, at least), grown for big faces."""
    short = min(frame_shape[0], frame_shape[1])
    scale = max(0.4, short / 720 * 0.55)
    if face_h:
        scale = min(max(scale, face_h / 260), 2 * scale)
    return scale


def _shade(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float = 0.6) -> None:
    """Darken a rectangle (clipped to the frame) so text and bars read on any background."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 > x0 and y1 > y0:
        region = img[y0:y1, x0:x1]
        region[:] = (region * (1 - alpha)).astype(np.uint8)


def draw_faces(img: np.ndarray, records: list[FaceRecord], colours: dict | None = None) -> list[tuple]:
    """Draw every face of ``records`` (those with a face) on ``img`` (BGR, in place). Returns, per face drawn,
    (face id, its label's rectangle, its panel's rectangle), rectangles as (x0, y0, x1, y1)."""
    import cv2

    colours = colours or bgr_colours()
    h, w = img.shape[:2]
    faces = [r for r in records if r.has_face and r.probs is not None]
    taken = [(r.x, r.y, r.x + r.w, r.y + r.h) for r in faces]  # boxes, labels and placed panels: kept clear of panels
    labels, scales = [], []
    # Every box and label first, so that no probability panel is then placed over a label (its own or another's).
    for rec in faces:
        emotion, conf = rec.emotion, rec.confidence
        colour = colours[emotion]
        scale = text_scale(img.shape, rec.h)
        thick = max(1, int(round(scale * 2)))
        line = max(2, int(round(min(h, w) / 300)))
        x0, y0, x1, y1 = rec.x, rec.y, rec.x + rec.w, rec.y + rec.h
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, line, cv2.LINE_AA)
        # Label: "#0 happy 0.87" on a band in the emotion's colour, above the box (below it at the frame's top).
        label = f"#{rec.face_id} {emotion} {conf:.2f}"
        (tw, th), base = cv2.getTextSize(label, FONT, scale, thick)
        pad = max(2, th // 4)
        band = th + 2 * pad + base
        lx0 = min(max(x0 - line // 2, 0), max(w - tw - 2 * pad, 0))
        # Above the box, else below it, else inside its top (or bottom) edge: the first of those in the frame that
        # covers no label drawn before (in a crowd, side by side faces' labels would cover each other's), else the
        # one that covers least of them.
        ends = [end for end in (y0 - line // 2, y1 + line // 2 + band) if end - band >= 0 and end <= h]
        ends += [min(max(y0, 0) + band, h), max(min(y1, h), band)]
        ly1 = min(ends, key=lambda end: sum(_overlap((lx0, end - band, lx0 + tw + 2 * pad, end), other)
                                            for other in labels))  # min keeps the first of equals
        ly0 = ly1 - band
        cv2.rectangle(img, (lx0, ly0), (lx0 + tw + 2 * pad, ly1), colour, -1)
        cv2.putText(img, label, (lx0 + pad, ly1 - pad - base), FONT, scale, _ink_on(colour), thick, cv2.LINE_AA)
        labels.append((lx0, ly0, lx0 + tw + 2 * pad, ly1))
        scales.append(scale)
    placed = []
    for rec, label, scale in zip(faces, labels, scales):
        panel = _bars(img, rec, label, scale * 0.8, colours, taken, labels)
        taken.append(panel)
        placed.append((rec.face_id, label, panel))
    return placed


def _overlap(a, b) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _bars(img, rec: FaceRecord, label: tuple, scale: float, colours: dict, taken: list,
          labels: list) -> tuple[int, int, int, int]:
    """Seven horizontal bars, one per emotion, beside the box where they cover least of the faces and the panels
    already drawn (``taken``: its own face counting a quarter, another's in full) and, before anything, of the
    ``labels`` (its own, ``label``, among them): a covered face is still seen, a covered label is lost, and bars
    on another face read as that face's. Returns the panel's rectangle."""
    import cv2

    h, w = img.shape[:2]
    x0, y0, x1, y1 = rec.x, rec.y, rec.x + rec.w, rec.y + rec.h
    thick = max(1, int(round(scale * 1.6)))
    tw = max(cv2.getTextSize(SHORT[e], FONT, scale, thick)[0][0] for e in EMOTIONS)
    th = cv2.getTextSize("sur", FONT, scale, thick)[0][1]
    row = int(th * 1.7)
    bar_len = max(tw * 2, 30)
    pad = max(2, th // 3)
    panel_w = pad * 3 + tw + bar_len
    panel_h = row * len(EMOTIONS) + pad

    def clamp_y(y):
        return min(max(y, 0), max(h - panel_h, 0))

    def clamp_x(x):
        return min(max(x, 0), max(w - panel_w, 0))

    # Beside the box (right, then left), else below or above it, else inside its right edge: the first of those
    # that covers least of the labels, then of the faces and panels already placed (covered() weighs them).
    spots = [(x, clamp_y(y0)) for x in (x1 + pad, x0 - pad - panel_w) if 0 <= x and x + panel_w <= w]
    # (Below or above the box means past its own label when the label is on that side.)
    below, above = max(y1, label[3]) + pad, min(y0, label[1]) - pad - panel_h
    spots += [(clamp_x(x0), y) for y in (below, above) if 0 <= y and y + panel_h <= h]
    spots.append((clamp_x(x1 - panel_w), clamp_y(y0)))
    spots.append((clamp_x(x1 - panel_w), clamp_y(max(y0, label[3]))))  # inside the box, clear of its own label

    own = (x0, y0, x1, y1)

    def covered(spot):
        # Its own face weighs a quarter of another's: bars on a neighbour's face read as that face's (in a portrait
        # frame of two faces one above the other, face #1's sat inside face #0's box), yet a sliver of a neighbour
        # is better than half of its own face hidden.
        rect = (spot[0], spot[1], spot[0] + panel_w, spot[1] + panel_h)
        return (sum(_overlap(rect, t) for t in labels),
                sum(_overlap(rect, t) for t in taken if t != own) + _overlap(rect, own) / 4)

    px, py = min(spots, key=covered)
    _shade(img, px, py, px + panel_w, py + panel_h)
    top = EMOTIONS.index(rec.emotion)  # as the label and the CSV name it
    for i, e in enumerate(EMOTIONS):
        ry = py + pad + i * row
        ink = (255, 255, 255) if i == top else (200, 200, 200)
        cv2.putText(img, SHORT[e], (px + pad, ry + th), FONT, scale, ink, thick, cv2.LINE_AA)
        bx = px + 2 * pad + tw
        length = int(round(bar_len * float(rec.probs[i])))
        cv2.rectangle(img, (bx, ry + 1), (bx + bar_len, ry + row - pad), (90, 90, 90), 1)
        if length > 0:
            cv2.rectangle(img, (bx, ry + 1), (bx + length, ry + row - pad), colours[e], -1)
    return px, py, px + panel_w, py + panel_h


#: Where the legend may go, in the order it is tried: the bottom-left corner unless that covers a face.
LEGEND_CORNERS = ("bottom-left", "top-left", "bottom-right", "top-right")


def draw_legend(img: np.ndarray, text: str, avoid=(), prefer: str | None = None, labels=()) -> str:
    """A line of explanation in a corner of the frame, on a shaded band; on a narrow frame it breaks at its "; "
    into two lines rather than shrinking below the readable size. The corner is ``prefer`` (the last frame's, so
    that the legend does not jump about) while it covers none of the rectangles ``labels`` (the faces' labels, as
    (x0, y0, x1, y1)) and ``avoid`` (faces, their panels), else the first of :data:`LEGEND_CORNERS` that covers
    none, else the one that covers least of the labels, then of the rest (a covered face is still seen, a covered
    label is lost). Returns the corner used."""
    import cv2

    scale = text_scale(img.shape) * 0.85
    thick = max(1, int(round(scale * 1.6)))
    h, w = img.shape[:2]
    lines = [text]
    if cv2.getTextSize(text, FONT, scale, thick)[0][0] + 8 > w:
        lines = text.split("; ")
    widest = max(cv2.getTextSize(t, FONT, scale, thick)[0][0] for t in lines)
    if widest + 8 > w:  # still too wide: shrink to fit
        scale *= (w - 8) / (widest + 8)
    sizes = [cv2.getTextSize(t, FONT, scale, thick) for t in lines]
    th, base = sizes[0][0][1], sizes[0][1]
    pad = max(3, th // 3)
    step = th + base + pad
    band_w, band_h = max(s[0][0] for s in sizes) + 2 * pad, len(lines) * step + pad

    def band(corner: str) -> tuple[int, int, int, int]:
        x0 = 0 if corner.endswith("left") else max(w - band_w, 0)
        y0 = max(h - band_h, 0) if corner.startswith("bottom") else 0
        return x0, y0, x0 + band_w, y0 + band_h

    order = ([prefer] if prefer in LEGEND_CORNERS else []) + list(LEGEND_CORNERS)
    corner = min(order, key=lambda c: (sum(_overlap(band(c), r) for r in labels),
                                       sum(_overlap(band(c), r) for r in avoid)))  # min keeps the first of equals
    x0, top, x1, y1 = band(corner)
    _shade(img, x0, top, x1, y1, 0.55)
    for i, t in enumerate(lines):
        cv2.putText(img, t, (x0 + pad, top + (i + 1) * step - base), FONT, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return corner
