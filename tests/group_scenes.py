"""Generated group scenes for detection and tracking: many faces at known boxes, no-face frames, moving groups.

Every face is the project's face sprite (``tests/synthetic_media.py``) pasted at a known place, size and tilt, so
recall can be scored per face; blur and JPEG noise imitate real footage. Shared by the tests and by
``benchmarks/detect_quality.py``. Deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import synthetic_media as synthetic

FRAME_SIZES = ((854, 480), (1280, 720), (640, 480))


@dataclass
class Scene:
    """One frame (HxWx3 uint8 RGB) and the face boxes in it, (x0, y0, x1, y1) of the upright face box's bounds."""

    rgb: np.ndarray
    boxes: list[tuple[float, float, float, float]]
    widths: list[float]  # the face's own width in pixels (before rotation), the figure recall is bucketed by


def degrade(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur (sigma 0-1.2 px) and JPEG noise (quality 35-90), as a phone video or a web upload has."""
    import cv2

    sigma = rng.uniform(0.0, 1.2)
    if sigma > 0.3:
        rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    quality = int(rng.integers(35, 91))
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _fits(box, taken, pad) -> bool:
    x0, y0, x1, y1 = box
    return all(x1 + pad < a or b + pad < x0 or y1 + pad < c or d + pad < y0 for a, c, b, d in taken)


def face_scene(seed: int, *, size: tuple[int, int] | None = None, widths=(16, 400), max_faces: int = 6,
               max_angle: float = 30.0) -> Scene:
    """A frame with 1-``max_faces`` faces of widths drawn log-uniformly from ``widths``, tilted up to ``max_angle``
    degrees, turned a little, never overlapping, on a generated background, then blurred and JPEG-compressed."""
    rng = np.random.default_rng(seed)
    w, h = size or FRAME_SIZES[seed % len(FRAME_SIZES)]
    frame = synthetic.make_background((w, h), seed=int(rng.integers(1 << 30)))
    placements, taken, face_widths = [], [], []
    for _ in range(int(rng.integers(1, max_faces + 1))):
        for _attempt in range(30):
            px = float(math.exp(rng.uniform(math.log(widths[0]), math.log(min(widths[1], 0.8 * h)))))
            p = synthetic.Placement(float(rng.uniform(0.6 * px, w - 0.6 * px)), float(rng.uniform(0.6 * px, h - 0.6 * px)),
                                    px, angle=float(rng.uniform(-max_angle, max_angle)),
                                    squeeze=float(rng.uniform(0.8, 1.0)), flip=bool(rng.integers(2)))
            box = p.face_box()
            if box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h and _fits(box, taken, 0.3 * px):
                placements.append(p)
                taken.append(box)
                face_widths.append(px * p.squeeze)
                break
    # Larger faces first, so a small face is never painted over by a big one's hair and shoulders.
    order = sorted(range(len(placements)), key=lambda i: -placements[i].face_px)
    rgb = synthetic.composite(frame, [placements[i] for i in order])
    return Scene(degrade(rgb, rng), [taken[i] for i in order], [face_widths[i] for i in order])


def _text(frame: np.ndarray, rng: np.random.Generator) -> None:
    import cv2

    h, w = frame.shape[:2]
    words = ["THE END", "Chapter 3", "Family dinner 2019", "BREAKING NEWS", "o_O  :-)  @@", "Q&A 10:30",
             "Welcome!", "OOO 000 ooo", "8 8 8", "Best wishes"]
    for _ in range(int(rng.integers(1, 4))):
        scale = float(rng.uniform(0.6, 3.5)) * h / 480
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        org = (int(rng.uniform(0, 0.6 * w)), int(rng.uniform(0.15 * h, h)))
        cv2.putText(frame, str(rng.choice(words)), org, int(rng.choice([0, 2, 3, 4])), scale, colour,
                    max(1, int(scale * 2)), cv2.LINE_AA)


def no_face_scene(seed: int, *, size: tuple[int, int] | None = None) -> np.ndarray:
    """A frame without a face: background, title text, and bodies whose heads lie above the frame (shoulders and
    collars only), blurred and JPEG-compressed."""
    rng = np.random.default_rng(seed + 7_000_000)
    w, h = size or FRAME_SIZES[seed % len(FRAME_SIZES)]
    frame = synthetic.make_background((w, h), seed=int(rng.integers(1 << 30)))
    bodies = []
    for _ in range(int(rng.integers(0, 3))):
        px = float(rng.uniform(0.15, 0.6) * h)
        # The face box's bottom edge lies at least a tenth of a face above the top of the frame.
        bodies.append(synthetic.Placement(float(rng.uniform(0, w)), -0.6 * px - float(rng.uniform(0.1, 0.5)) * px, px,
                                          flip=bool(rng.integers(2))))
    frame = synthetic.composite(frame, bodies)
    if rng.random() < 0.7:
        _text(frame, rng)
    return degrade(frame, rng)


@dataclass
class Clip:
    """Frames of a generated clip and, per frame, each person's face box (x0, y0, x1, y1) or None when out."""

    frames: list[np.ndarray]
    truth: list[list[tuple[float, float, float, float] | None]]
    fps: float


def write_clip(clip: Clip, path) -> None:
    """``clip``'s frames as an MP4 (OpenCV's mp4v) at ``path``."""
    import cv2

    h, w = clip.frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), clip.fps, (w, h))
    for rgb in clip.frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def group_clip(*, frames: int = 90, size=(854, 480), people: int = 6, face_px=(44, 64), seed: int = 0,
               cross: bool = True, fps: float = 15.0) -> Clip:
    """A group seated in a row, each face swaying a little (a few pixels a frame, tilting up to 10 degrees); with
    ``cross``, two neighbours lean towards each other until their faces pass within a few pixels, then back."""
    rng = np.random.default_rng(seed)
    w, h = size
    bg = synthetic.make_background((w, h), seed=seed + 11)
    xs = np.linspace(0.1 * w, 0.9 * w, people)
    base = [(float(x), float(rng.uniform(0.35, 0.6) * h), float(rng.uniform(*face_px))) for x in xs]
    phases = rng.uniform(0, 2 * math.pi, (people, 3))
    out, truth = [], []
    for f in range(frames):
        t = f / fps
        placements = []
        for i, (x, y, px) in enumerate(base):
            dx = 0.25 * px * math.sin(1.3 * t + phases[i, 0])
            dy = 0.12 * px * math.sin(0.9 * t + phases[i, 1])
            if cross and i in (2, 3):  # the pair leans in: at the middle of the clip, their boxes almost touch
                gap = xs[3] - xs[2]
                lean = 0.5 * (gap - 1.05 * max(base[2][2], base[3][2])) * math.sin(math.pi * f / max(frames - 1, 1))
                dx = lean if i == 2 else -lean
            placements.append(synthetic.Placement(x + dx, y + dy, px, angle=10 * math.sin(0.7 * t + phases[i, 2]),
                                                  flip=bool(i % 2)))
        frame = synthetic.composite(bg, placements)
        out.append(degrade(frame, np.random.default_rng(seed * 100_003 + f)))
        truth.append([p.face_box() for p in placements])
    return Clip(out, truth, fps)


def cut_clip(*, frames: int = 20, size=(640, 480), seed: int = 0) -> tuple[Clip, int]:
    """Two shots joined by a hard cut: one person, then, from frame ``frames // 2``, another at the same place
    (different background, face 15% larger). Returns the clip and the first frame after the cut."""
    w, h = size
    cut = frames // 2
    shots = [(synthetic.make_background((w, h), seed=seed + 1), 150.0, False),
             (synthetic.make_background((w, h), seed=seed + 2), 172.0, True)]
    out, truth = [], []
    for f in range(frames):
        bg, px, flip = shots[f >= cut]
        p = synthetic.Placement(w / 2 + 2 * (f % cut), h / 2, px, flip=flip)
        out.append(synthetic.composite(bg, [p]))
        truth.append([p.face_box()])
    return Clip(out, truth, 15.0), cut
