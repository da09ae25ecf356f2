"""Synthetic test and demo media, all made from the Grace Hopper photo that ships with matplotlib.

Nothing here is copied from elsewhere: every face is a soft-edged "sprite" cut from
``matplotlib.cbook.get_sample_data("grace_hopper.jpg")`` and composited onto generated backgrounds. The module
serves the tests (``tests/conftest.py``), the demo samples (``samples/make_samples.py``), the benchmarks and
``scripts/``. It lives under ``tests/``, not in the installed package, because no user run needs it: the tests
import it as ``import synthetic_media as synthetic`` (pytest puts ``tests/`` on the path); scripts elsewhere in the
checkout put ``tests/`` on ``sys.path`` first. (``tests/synthetic_faces.py`` makes the 48x48 training faces.)

What it offers:

* :func:`grace_hopper_rgb`, :func:`face_sprite`, :class:`Placement`, :func:`composite` -- the face and how to put
  it into a frame (centre, size, in-plane rotation, horizontal squeeze imitating yaw).
* :func:`make_background` -- textured, non-flat backgrounds at any resolution.
* :func:`photo_faces`, :func:`photo_no_face`, :func:`save_image`, :func:`save_exif_rotated` -- still photos and their
  file variants (gray, RGBA, 16-bit, palette, EXIF-rotated).
* :class:`FaceScene`, :func:`write_face_video`, :class:`VideoInfo` -- videos streamed frame by frame to an encoder
  (OpenCV ``mp4v``, or H.264 through the optional PyAV package), with the exact per-frame face geometry.
* :func:`write_rotated_copy` -- a video stored sideways with a display-rotation tag, as phones record.
* :func:`probe_faces` -- the generated 48x48 faces an int8 classifier is checked on against its float model.
* :func:`write_zero_byte`, :func:`write_random_bytes`, :func:`write_text_as`, :func:`write_truncated_copy`,
  :func:`write_corrupt_video` -- broken and awkward files for error-handling tests; :func:`mp4_faststart` (a
  PyAV remux) puts an MP4's index first.

Heavy imports (cv2, PIL, matplotlib, av) happen inside functions so that importing this module costs nothing.
Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "FACE_BOX_IN_PHOTO",
    "FaceScene",
    "FaceState",
    "Photo",
    "Placement",
    "Sprite",
    "VideoInfo",
    "available_codecs",
    "composite",
    "face_sprite",
    "face_state",
    "grace_hopper_rgb",
    "h264_available",
    "make_background",
    "mp4_box_kinds",
    "mp4_faststart",
    "photo_faces",
    "photo_no_face",
    "save_exif_rotated",
    "write_damaged_copy",
    "save_image",
    "still_script",
    "tour_script",
    "write_corrupt_video",
    "write_face_video",
    "write_random_bytes",
    "write_text_as",
    "write_truncated_copy",
    "write_zero_byte",
]

# The face box MediaPipe's short-range BlazeFace finds in the bundled 512x600 photo (x, y, w, h; score 0.94).
# Measured once and written down so that this module never needs MediaPipe itself.
FACE_BOX_IN_PHOTO = (171, 146, 194, 194)

#: The tests' small video (``tests/conftest.py``'s ``face_video``): 4 s at 12 fps, 320x240, one face that moves,
#: tilts, scales, turns, leaves and re-enters.
FACE_VIDEO = dict(seconds=4.0, fps=12.0, size=(320, 240), faces=1, seed=0, codec="mp4v")

# The part of the photo the sprite is cut from (x0, y0, x1, y1): hat, hair and the top of the shoulders.
_SPRITE_CROP = (50, 10, 486, 495)


# --------------------------------------------------------------------------------------------------------------
# The photo and the sprite
# --------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _grace_hopper_cached() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    rgb.setflags(write=False)
    return rgb


def grace_hopper_rgb() -> np.ndarray:
    """Return the Grace Hopper photo bundled with matplotlib as a 600x512x3 uint8 RGB array (a fresh copy)."""
    return _grace_hopper_cached().copy()


@dataclass(frozen=True)
class Sprite:
    """A face cut from the photo with a soft alpha mask, ready to be composited.

    ``rgba`` is uint8 (h, w, 4): colour premultiplied by alpha, then alpha (0..255). Premultiplying once makes
    warping a single pass, keeps the transparent surroundings from bleeding dark fringes into the edge when the
    sprite is resampled, and lets blending run as a few saturating uint8 OpenCV operations (fast enough for
    30-minute 720p clips). ``face_box`` is (x, y, w, h) of the face in sprite pixels.
    ``levels`` holds the same sprite halved repeatedly, so that small faces are drawn from a pre-filtered copy
    instead of an aliased one.
    """

    rgba: np.ndarray
    face_box: tuple[float, float, float, float]
    levels: tuple[np.ndarray, ...] = field(repr=False, default=())

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.rgba.shape[1]), int(self.rgba.shape[0])

    @property
    def face_center(self) -> tuple[float, float]:
        """Centre of the face box in sprite pixels."""
        x, y, w, h = self.face_box
        return x + w / 2.0, y + h / 2.0

    @property
    def face_width(self) -> float:
        return float(self.face_box[2])

    @property
    def rgb(self) -> np.ndarray:
        """The sprite's colour, un-premultiplied, as uint8 RGB (for looking at it)."""
        a = self.rgba[:, :, 3:4].astype(np.float32)
        rgb = np.where(a > 0, self.rgba[:, :, :3] * 255.0 / np.maximum(a, 1.0), 0.0)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

    @property
    def alpha(self) -> np.ndarray:
        """The alpha mask, float32 in 0..1."""
        return self.rgba[:, :, 3].astype(np.float32) / 255.0


@functools.lru_cache(maxsize=1)
def face_sprite() -> Sprite:
    """Return the Grace Hopper face sprite: face, hat, hair and shoulders, with an alpha that fades to zero.

    The mask is a head ellipse joined to a wider shoulder ellipse, blurred, and multiplied by a ramp that reaches
    zero at every border of the crop, so the composite never shows a rectangle or a hard edge. Cached; treat the
    arrays as read-only.
    """
    import cv2

    x0, y0, x1, y1 = _SPRITE_CROP
    rgb = _grace_hopper_cached()[y0:y1, x0:x1].astype(np.float32)
    h, w = rgb.shape[:2]
    fx, fy, fw, fh = FACE_BOX_IN_PHOTO
    face_box = (float(fx - x0), float(fy - y0), float(fw), float(fh))
    cx = face_box[0] + fw / 2.0

    mask = np.zeros((h, w), np.uint8)
    # Head: covers the hat (top near y=25 in the photo) down to the chin (y~345), and the hair at the sides.
    # Kept narrow at the sides so little of the photo's blue backdrop and flag comes along.
    cv2.ellipse(mask, (round(cx), 198 - y0), (112, 176), 0, 0, 360, 255, -1, cv2.LINE_AA)
    # Shoulders: a wide, low ellipse; its lower part is faded out by the bottom ramp.
    cv2.ellipse(mask, (round(cx), 600 - y0), (210, 250), 0, 0, 360, 255, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigmaX=9)
    ramp_len = 40.0
    ys = np.arange(h, dtype=np.float32)
    xs = np.arange(w, dtype=np.float32)
    ramp_y = np.clip(np.minimum(ys, h - 1 - ys) / ramp_len, 0, 1)
    ramp_x = np.clip(np.minimum(xs, w - 1 - xs) / ramp_len, 0, 1)
    # The shoulders fade over a longer stretch so the body dissolves rather than ending in a line.
    ramp_bottom = np.clip((h - 1 - ys) / 75.0, 0, 1)
    alpha *= (np.minimum(ramp_y, ramp_bottom)[:, None] * ramp_x[None, :])
    alpha = _smoothstep(alpha)

    rgba = np.empty((h, w, 4), np.uint8)
    rgba[:, :, :3] = np.clip(np.rint(rgb * alpha[:, :, None]), 0, 255)
    rgba[:, :, 3] = np.clip(np.rint(alpha * 255.0), 0, 255)
    levels = [rgba]
    while min(levels[-1].shape[:2]) > 24:
        levels.append(cv2.pyrDown(levels[-1]))
    for arr in levels:
        arr.setflags(write=False)
    return Sprite(rgba=rgba, face_box=face_box, levels=tuple(levels))


def _smoothstep(a: np.ndarray) -> np.ndarray:
    return (a * a * (3.0 - 2.0 * a)).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# Placing faces
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where and how one face sprite is drawn in a frame.

    ``cx, cy``: centre of the face box in frame pixels (may lie outside the frame).
    ``face_px``: width (= height) of the face box in frame pixels before squeezing.
    ``angle``: in-plane rotation in degrees, positive = counter-clockwise as seen on screen.
    ``squeeze``: horizontal compression of the head in its own frame (1 = frontal, 0.6 = a strong turn), imitating
    yaw. ``flip`` mirrors the sprite left-right.
    """

    cx: float
    cy: float
    face_px: float
    angle: float = 0.0
    squeeze: float = 1.0
    flip: bool = False

    def matrix(self, sprite: Sprite | None = None, level: int = 0) -> np.ndarray:
        """2x3 affine matrix taking (level-``level``) sprite pixel coordinates to frame coordinates."""
        sprite = sprite or face_sprite()
        s = self.face_px / sprite.face_width
        fcx, fcy = sprite.face_center
        k = 2.0 ** level
        t = math.radians(self.angle)
        c, sn = math.cos(t), math.sin(t)
        sx = s * self.squeeze * (-1.0 if self.flip else 1.0)
        a = np.array([[c * sx, sn * s], [-sn * sx, c * s]], np.float64)
        # pyrDown centres its output pixel i on input pixel 2i, so level-k pixel i is level-0 coordinate k * i.
        pre = np.array([[k, 0.0, -fcx], [0.0, k, -fcy]], np.float64)
        m = np.zeros((2, 3), np.float64)
        m[:, :2] = a @ pre[:, :2]
        m[:, 2] = a @ pre[:, 2] + np.array([self.cx, self.cy])
        return m

    def face_corners(self, sprite: Sprite | None = None) -> np.ndarray:
        """The four corners of the (rotated, squeezed) face box in frame coordinates, shape (4, 2)."""
        sprite = sprite or face_sprite()
        x, y, w, h = sprite.face_box
        return _transform(self.matrix(sprite), np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]))

    def sprite_corners(self, sprite: Sprite | None = None) -> np.ndarray:
        """The four corners of the whole sprite (face, hair, shoulders) in frame coordinates, shape (4, 2)."""
        sprite = sprite or face_sprite()
        w, h = sprite.size
        return _transform(self.matrix(sprite), np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64))

    def face_box(self, sprite: Sprite | None = None) -> tuple[float, float, float, float]:
        """Axis-aligned bounding box (x0, y0, x1, y1) of the face box's corners in frame coordinates."""
        c = self.face_corners(sprite)
        return float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max())


def _transform(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@dataclass(frozen=True)
class FaceState:
    """One face's situation in one frame.

    ``state`` is ``"in"`` when the whole face box lies inside the frame, ``"out"`` when no pixel of the sprite
    (hair and shoulders included) can reach the frame, and ``"partial"`` otherwise. ``box`` is the face box's
    axis-aligned bounds (x0, y0, x1, y1) in frame pixels, unclipped; None when the script hides the face.
    """

    face: int
    state: str
    placement: Placement | None
    box: tuple[float, float, float, float] | None

    @property
    def in_view(self) -> bool:
        return self.state == "in"


def face_state(face: int, placement: Placement | None, size: tuple[int, int],
               sprite: Sprite | None = None) -> FaceState:
    """Classify ``placement`` against a frame of ``size`` = (width, height); see :class:`FaceState`."""
    if placement is None:
        return FaceState(face, "out", None, None)
    sprite = sprite or face_sprite()
    w, h = size
    fc = placement.face_corners(sprite)
    sc = placement.sprite_corners(sprite)
    box = (float(fc[:, 0].min()), float(fc[:, 1].min()), float(fc[:, 0].max()), float(fc[:, 1].max()))
    if box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h:
        state = "in"
    elif sc[:, 0].max() <= 0 or sc[:, 1].max() <= 0 or sc[:, 0].min() >= w or sc[:, 1].min() >= h:
        state = "out"
    else:
        state = "partial"
    return FaceState(face, state, placement, box)


def composite(frame: np.ndarray, placements: Sequence[Placement | None], sprite: Sprite | None = None,
              *, inplace: bool = False) -> np.ndarray:
    """Draw the face sprite into ``frame`` (HxWx3 uint8, any channel order matching RGB) at each placement.

    Only the region each sprite covers is warped and blended, so the cost does not grow with the frame size.
    ``None`` placements are skipped. Returns the composited frame (``frame`` itself when ``inplace``).
    """
    import cv2

    sprite = sprite or face_sprite()
    out = frame if inplace else frame.copy()
    fh, fw = out.shape[:2]
    for p in placements:
        if p is None:
            continue
        scale = p.face_px / sprite.face_width * min(1.0, p.squeeze)
        level = 0
        while level + 1 < len(sprite.levels) and scale * 2 ** (level + 1) <= 1.0:
            level += 1
        src = sprite.levels[level] if sprite.levels else sprite.rgba
        m = p.matrix(sprite, level)
        corners = p.sprite_corners(sprite)
        x0 = max(0, int(math.floor(corners[:, 0].min())))
        y0 = max(0, int(math.floor(corners[:, 1].min())))
        x1 = min(fw, int(math.ceil(corners[:, 0].max())) + 1)
        y1 = min(fh, int(math.ceil(corners[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        m_roi = m.copy()
        m_roi[:, 2] -= (x0, y0)
        warped = cv2.warpAffine(src, m_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        # out = roi * (1 - alpha) + premultiplied colour, in saturating uint8 arithmetic.
        inv = cv2.cvtColor(cv2.bitwise_not(warped[:, :, 3].copy()), cv2.COLOR_GRAY2RGB)
        roi = out[y0:y1, x0:x1]
        kept = cv2.multiply(roi, inv, scale=1.0 / 255.0)
        roi[...] = cv2.add(kept, cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB))
    return out


# --------------------------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------------------------

_PALETTES = [
    ((52, 84, 122), (196, 170, 128)),   # dusk blue to sand
    ((38, 96, 74), (214, 206, 170)),    # green to cream
    ((120, 64, 70), (232, 196, 150)),   # plum to peach
    ((70, 70, 90), (180, 200, 215)),    # slate to sky
]


def make_background(size: tuple[int, int], *, seed: int = 0, noise: float = 4.0) -> np.ndarray:
    """Return a textured RGB uint8 background of ``size`` = (width, height).

    A diagonal two-colour gradient, translucent rectangles, bars and rings, a fine woven texture and mild noise:
    enough structure that video encoders and detectors have real work to do, but nothing face-like (no blobs with
    two dark spots over a third). Resolution-independent: the same seed gives the same picture at any size.
    """
    import cv2

    w, h = int(size[0]), int(size[1])
    if w < 1 or h < 1:
        raise ValueError(f"background size must be positive, got {size!r}")
    rng = np.random.default_rng(seed)
    c0, c1 = (np.array(c, np.float32) for c in _PALETTES[seed % len(_PALETTES)])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0.3, 1.2)
    t = (xx / max(w, 1)) * math.cos(angle) + (yy / max(h, 1)) * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None, :] * (1 - t[:, :, None]) + c1[None, None, :] * t[:, :, None]

    overlay = img.copy()
    unit = min(w, h)
    for _ in range(7):
        kind = rng.integers(3)
        colour = tuple(float(v) for v in rng.uniform(30, 235, 3))
        px, py = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        if kind == 0:  # rectangle
            rw, rh = int(rng.uniform(0.1, 0.45) * unit), int(rng.uniform(0.1, 0.45) * unit)
            cv2.rectangle(overlay, (px, py), (px + rw, py + rh), colour, -1, cv2.LINE_AA)
        elif kind == 1:  # thick diagonal bar
            dx, dy = rng.uniform(-1, 1, 2) * unit
            cv2.line(overlay, (px, py), (int(px + dx), int(py + dy)), colour,
                     max(1, int(rng.uniform(0.02, 0.06) * unit)), cv2.LINE_AA)
        else:  # ring (hollow, so it never reads as a head)
            r = int(rng.uniform(0.05, 0.25) * unit)
            cv2.circle(overlay, (px, py), max(r, 2), colour, max(1, int(0.02 * unit)), cv2.LINE_AA)
    img = cv2.addWeighted(overlay, 0.45, img, 0.55, 0.0)

    # A woven texture whose period scales with the frame so it looks alike at every resolution.
    period = max(unit / 40.0, 3.0)
    weave = np.sin(xx * (2 * math.pi / period)) * np.sin(yy * (2 * math.pi / (period * 1.3)))
    img += (6.0 * weave)[:, :, None]
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=max(unit / 600.0, 0.6))
    if noise > 0:
        img += rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Photo:
    """A generated still: RGB pixels and where each face is (one :class:`FaceState` per face, all ``"in"``)."""

    rgb: np.ndarray
    faces: list[FaceState]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def photo_faces(n: int = 1, size: tuple[int, int] | None = None, *, seed: int = 0) -> Photo:
    """A photo with ``n`` faces (0 to 6) side by side on a generated background.

    With one face it is a portrait (default 480x600, face about 40% of the width). With several, faces get
    decreasing sizes (100%, 82%, 68%, ...) and slightly different heights and tilts, with face boxes that never
    overlap (default size 960x600 for n <= 3, wider beyond). Every face is large enough for MediaPipe's
    short-range detector.
    """
    if not 0 <= n <= 6:
        raise ValueError(f"n must be 0..6, got {n}")
    if size is None:
        size = (480, 600) if n <= 1 else ((960, 600) if n <= 3 else (320 * n, 600))
    w, h = int(size[0]), int(size[1])
    rng = np.random.default_rng(seed + 1000)
    bg = make_background((w, h), seed=seed)
    if n == 0:
        return Photo(bg, [])
    placements: list[Placement] = []
    if n == 1:
        # Big enough that the shoulders run off the bottom edge, as in a real portrait.
        face = 0.5 * min(w, h)
        placements.append(Placement(w / 2.0, h * 0.48, face))
    else:
        col = w / n
        rel = [1.0, 0.82, 0.68, 0.92, 0.75, 0.6][:n]
        # Shuffle which column gets which size, so "biggest on the left" is not an accident tests rely on.
        order = list(rng.permutation(n))
        for j in range(n):
            # Neighbours' shoulders may overlap, as in a real group photo; their face boxes never do. Below about
            # 13% of the frame's width the short-range detector starts to miss faces, hence the generous size.
            face = min(0.62 * col, 0.4 * h) * rel[order[j]]
            cy = h * (0.4 + rng.uniform(-0.06, 0.06))
            placements.append(Placement(col * (j + 0.5), cy, face, angle=float(rng.uniform(-8, 8)),
                                        flip=bool(j % 2)))
    rgb = composite(bg, placements)
    return Photo(rgb, [face_state(i, p, (w, h)) for i, p in enumerate(placements)])


def photo_no_face(size: tuple[int, int] = (640, 480), *, seed: int = 3) -> Photo:
    """A photo of background only: texture, shapes and noise, no face."""
    return photo_faces(0, size, seed=seed)


def save_image(path: str | os.PathLike, rgb: np.ndarray, *, variant: str = "rgb", quality: int = 90) -> Path:
    """Write ``rgb`` (HxWx3 uint8 RGB) to ``path`` as the named ``variant``; the suffix picks the format.

    Variants: ``"rgb"`` (plain), ``"gray"`` (8-bit L), ``"rgba"`` (alpha falling to 0 in the corners, so a reader
    must composite it), ``"gray16"`` (16-bit grayscale PNG, PIL mode I;16), ``"rgb16"`` (16-bit-per-channel RGB
    PNG, written with OpenCV since PIL cannot), ``"palette"`` (256-colour P mode). Returns the path.
    """
    from PIL import Image

    path = Path(path)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    im = Image.fromarray(rgb, "RGB")
    kwargs = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    if variant == "rgb":
        im.save(path, **kwargs)
    elif variant == "gray":
        im.convert("L").save(path, **kwargs)
    elif variant == "rgba":
        h, w = rgb.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
        alpha = np.clip((1.25 - r) / 0.25, 0, 1)
        rgba = np.dstack([rgb, np.rint(alpha * 255).astype(np.uint8)])
        Image.fromarray(rgba, "RGBA").save(path)
    elif variant == "gray16":
        gray = np.asarray(im.convert("L"), dtype="<u2") * 257
        im16 = Image.fromarray(np.ascontiguousarray(gray, dtype="<u2"))  # little-endian uint16 -> mode I;16
        if im16.mode != "I;16":
            raise RuntimeError(f"Pillow made mode {im16.mode} from uint16 data, expected I;16")
        im16.save(path)
    elif variant == "rgb16":
        import cv2

        bgr16 = rgb[:, :, ::-1].astype(np.uint16) * 257
        if not cv2.imwrite(str(path), bgr16):
            raise OSError(f"OpenCV could not write a 16-bit image to {path}")
    elif variant == "palette":
        im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(path)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return path


# PIL's exif_transpose applies these to get from stored pixels to the upright picture; we apply the inverse.
_ORIENTATION_INVERSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
                        6: "ROTATE_90", 7: "TRANSVERSE", 8: "ROTATE_270"}


def save_animation(path: str | os.PathLike, frames: Sequence[np.ndarray], durations_ms: Sequence[int]) -> Path:
    """Write RGB ``frames`` as one multi-frame image, each shown for its duration; the suffix picks the format: GIF,
    APNG (``.png``), animated WebP, or a multi-page TIFF (which has no durations). Returns the path."""
    from PIL import Image

    path = Path(path)
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    timing = {} if path.suffix.lower() in (".tif", ".tiff") else {"duration": list(durations_ms), "loop": 0}
    images[0].save(path, save_all=True, append_images=images[1:], **timing)
    return path


def save_exif_rotated(path: str | os.PathLike, rgb: np.ndarray, *, orientation: int = 6,
                      quality: int = 92) -> Path:
    """Save ``rgb`` so that it only looks upright when the EXIF Orientation tag is honoured.

    The pixels are stored transformed by the inverse of what ``orientation`` asks a viewer to do (for 6, the
    stored image is the upright one turned 90 degrees counter-clockwise) and the tag is written; so
    ``ImageOps.exif_transpose`` of the file gives back ``rgb`` (up to JPEG loss) while the raw pixels do not match.
    """
    from PIL import Image

    if orientation not in _ORIENTATION_INVERSE:
        raise ValueError(f"orientation must be 2..8, got {orientation}")
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    stored = im.transpose(getattr(Image.Transpose, _ORIENTATION_INVERSE[orientation]))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    path = Path(path)
    kwargs = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    stored.save(path, exif=exif.tobytes(), **kwargs)
    return path


# --------------------------------------------------------------------------------------------------------------
# Videos: the scene (geometry and pixels of frame i) and the writers
# --------------------------------------------------------------------------------------------------------------

_FLICKER_PAD = 16

Script = Callable[[float, int, "FaceScene"], "Placement | None"]


def _lerp_keys(u: float, keys: Sequence[tuple[float, float]]) -> float:
    """Piecewise-linear interpolation through (u, value) keys with eased (smoothstep) segments."""
    for (u0, v0), (u1, v1) in zip(keys, keys[1:]):
        if u0 <= u <= u1:
            s = 0.0 if u1 == u0 else (u - u0) / (u1 - u0)
            s = s * s * (3 - 2 * s)
            return v0 + (v1 - v0) * s
    return keys[-1][1]


def tour_script(cycle_s: float | None = None) -> Script:
    """The default motion: each face tours its lane, turns, tilts, grows and shrinks, leaves and comes back.

    The frame is split into one lane per face (columns when there are several, the whole frame for one). Along
    the lane's long axis a face starts at 30% (38% down a column), drifts to 70% (66%) while tilting (+-22
    degrees), scaling (x0.8..1.2) and turning (squeeze down to 0.6), then slides out past the far edge until no
    pixel of it is visible, stays away, re-enters from the near edge and returns to its start, so the motion loops
    every ``cycle_s`` seconds (default: the whole video, up to 10 s). Face boxes stay inside their own lane's
    width, so the faces of a multi-face video never cross. Several faces are offset in phase (by 0.13 cycle each)
    so they do not leave all at once. Within one cycle a face is fully in view for about the first 45% and the
    last 15-20%, and completely out for about a quarter in between.
    """

    def script(t: float, face: int, scene: FaceScene) -> Placement | None:
        period = cycle_s or scene.cycle_s
        lane = scene.lane(face)
        lx, ly, lw, lh = lane
        along_x = lw >= lh
        long_len, short_len = (lw, lh) if along_x else (lh, lw)
        u = (t / period + 0.13 * face) % 1.0
        # Several faces get a larger share of their narrow lane so that each stays detectable in the whole frame.
        base = (0.38 if scene.faces <= 1 else 0.5) * short_len
        scale = 1.0 + 0.2 * math.sin(2 * math.pi * u + 0.7)
        face_px = base * scale
        angle = 22.0 * math.sin(2 * math.pi * 2 * u)
        squeeze = 1.0 - 0.4 * max(0.0, math.sin(2 * math.pi * 3 * u + 0.4)) ** 2
        # Far enough past an edge that even the corners of the rotated, scaled sprite are outside.
        reach = _sprite_reach(face_px)
        off_end = (long_len + reach) / long_len
        off_start = -reach / long_len
        # Travelling down a tall column, start lower so the hat is not cut off at the top.
        lo, hi = (0.30, 0.70) if along_x else (0.38, 0.66)
        keys = [(0.0, lo), (0.40, hi), (0.52, off_end), (0.60, off_end), (0.60001, off_start),
                (0.68, off_start), (0.85, lo), (1.0, lo)]
        pos = _lerp_keys(u, keys) * long_len
        # A little below the middle, so the hat stays in the frame when the face is at its largest.
        wobble = (0.55 + 0.05 * math.sin(2 * math.pi * 2 * u + 0.5)) * short_len
        if along_x:
            cx, cy = lx + pos, ly + wobble
        else:
            cx, cy = lx + wobble, ly + pos
        return Placement(cx, cy, face_px, angle=angle, squeeze=squeeze, flip=bool(face % 2))

    return script


def still_script(t: float, face: int, scene: FaceScene) -> Placement:
    """Every face frontal and motionless in the middle of its lane (for tests that want no motion)."""
    lx, ly, lw, lh = scene.lane(face)
    return Placement(lx + lw / 2.0, ly + lh / 2.0, 0.42 * min(lw, lh), flip=bool(face % 2))


def _sprite_reach(face_px: float) -> float:
    sprite = face_sprite()
    w, h = sprite.size
    fcx, fcy = sprite.face_center
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) - (fcx, fcy)
    return float(np.hypot(corners[:, 0], corners[:, 1]).max()) * face_px / sprite.face_width + 2.0


class FaceScene:
    """A deterministic synthetic video: the geometry and pixels of every frame, computed on demand.

    ``size`` = (width, height), ``fps``, ``frames`` (count) and ``faces`` (0..6) define it; ``script`` is
    ``"tour"`` (see :func:`tour_script`), ``"still"``, ``"none"`` (background only) or a callable
    ``script(t_seconds, face_index, scene) -> Placement | None``. The background is a textured canvas that pans
    slowly, plus a faint flicker of noise, so encoders cannot skip the background.

    Nothing is stored per frame: :meth:`render` builds frame ``i`` from scratch, and :meth:`face_states` gives the
    truth about where each face is in it.
    """

    def __init__(self, size: tuple[int, int] = (640, 360), fps: float = 20.0, frames: int = 140, *,
                 faces: int = 1, script: str | Script = "tour", seed: int = 0, cycle_s: float | None = None,
                 flicker: float = 1.5):
        w, h = int(size[0]), int(size[1])
        if w < 16 or h < 16:
            raise ValueError(f"video size must be at least 16x16, got {size!r}")
        if not 0 <= faces <= 6:
            raise ValueError(f"faces must be 0..6, got {faces}")
        if not fps > 0 or frames < 0:
            raise ValueError(f"need fps > 0 and frames >= 0, got fps={fps}, frames={frames}")
        self.size = (w, h)
        self.fps = float(fps)
        self.frames = int(frames)
        self.faces = int(faces)
        self.seed = seed
        self.cycle_s = float(cycle_s) if cycle_s else min(max(self.frames / self.fps, 1.0), 10.0)
        if callable(script):
            self._script = script
        elif script == "tour":
            self._script = tour_script()
        elif script == "still":
            self._script = still_script
        elif script == "none":
            self._script = lambda t, face, scene: None
        else:
            raise ValueError(f"unknown script {script!r}; use 'tour', 'still', 'none' or a callable")
        self.flicker = float(flicker)
        self._bg_cache: tuple | None = None

    # -- geometry ----------------------------------------------------------------------------------------------

    def lane(self, face: int) -> tuple[float, float, float, float]:
        """(x, y, w, h) of the strip of the frame that ``face`` moves in: the frame itself, or its column."""
        w, h = self.size
        if self.faces <= 1:
            return 0.0, 0.0, float(w), float(h)
        col = w / self.faces
        return col * face, 0.0, col, float(h)

    def time_of(self, i: int) -> float:
        """Presentation time of frame ``i`` in seconds."""
        return i / self.fps

    def placements(self, i: int) -> list[Placement | None]:
        """Where each face is drawn in frame ``i`` (None: not drawn)."""
        t = self.time_of(i)
        return [self._script(t, f, self) for f in range(self.faces)]

    def face_states(self, i: int) -> list[FaceState]:
        """The truth about each face in frame ``i``: ``"in"``, ``"partial"`` or ``"out"``, with its box."""
        return [face_state(f, p, self.size) for f, p in enumerate(self.placements(i))]

    def states(self, face: int = 0) -> np.ndarray:
        """The state of ``face`` in every frame as a numpy array of strings (small: one short string a frame)."""
        return np.array([self.face_states(i)[face].state for i in range(self.frames)])

    def intervals(self, state: str = "in", face: int = 0) -> list[tuple[int, int]]:
        """Half-open frame ranges [start, stop) in which ``face`` is continuously in ``state``."""
        runs: list[tuple[int, int]] = []
        start = None
        for i in range(self.frames):
            here = self.face_states(i)[face].state == state
            if here and start is None:
                start = i
            elif not here and start is not None:
                runs.append((start, i))
                start = None
        if start is not None:
            runs.append((start, self.frames))
        return runs

    # -- pixels ------------------------------------------------------------------------------------------------

    def _background(self):
        if self._bg_cache is None:
            w, h = self.size
            margin = max(8, int(0.04 * max(w, h)))
            canvas = make_background((w + 2 * margin, h + 2 * margin), seed=self.seed)
            flick = None
            if self.flicker > 0:
                # One noise field a little larger than the frame; each frame reads it at another offset, which
                # gives fresh noise per pixel per frame for the memory of a single frame.
                rng = np.random.default_rng(self.seed + 7)
                n = rng.normal(0.0, self.flicker, (h + _FLICKER_PAD, w + _FLICKER_PAD, 3))
                flick = (np.clip(np.rint(n), 0, 255).astype(np.uint8), np.clip(np.rint(-n), 0, 255).astype(np.uint8))
            self._bg_cache = (canvas, margin, flick)
        return self._bg_cache

    def background(self, i: int) -> np.ndarray:
        """The background of frame ``i`` (RGB uint8, a new array): the canvas panned, with its flicker."""
        import cv2

        canvas, margin, flick = self._background()
        w, h = self.size
        t = self.time_of(i)
        ox = margin + int(round(0.9 * margin * math.sin(2 * math.pi * t / 23.0)))
        oy = margin + int(round(0.9 * margin * math.sin(2 * math.pi * t / 17.0 + 1.0)))
        frame = canvas[oy:oy + h, ox:ox + w].copy()
        if flick is not None:
            dx, dy = (i * 7) % _FLICKER_PAD, (i * 11 + i // _FLICKER_PAD) % _FLICKER_PAD
            cv2.add(frame, flick[0][dy:dy + h, dx:dx + w], dst=frame)
            cv2.subtract(frame, flick[1][dy:dy + h, dx:dx + w], dst=frame)
        return frame

    def render(self, i: int) -> np.ndarray:
        """Frame ``i`` as HxWx3 uint8 RGB, exactly as it is handed to the encoder."""
        return composite(self.background(i), self.placements(i), inplace=True)

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Yield RGB frames ``start .. stop-1`` one at a time."""
        for i in range(start, self.frames if stop is None else min(stop, self.frames)):
            yield self.render(i)


@dataclass
class VideoInfo:
    """What :func:`write_face_video` wrote: the file, its encoding, and the scene that gives per-frame truth.

    ``frames``/``fps``/``size`` are what was encoded. ``codec`` is ``"mp4v"`` or ``"h264"``; ``encoder`` names the
    actual encoder (``"opencv-mp4v"``, ``"pyav-libx264"``). ``seconds_to_write`` is the wall time of generation plus
    encoding. Use :meth:`face_states` and :meth:`intervals` to know where the faces are.
    """

    path: Path
    scene: FaceScene
    codec: str
    encoder: str
    bitrate: int | None
    bytes: int
    seconds_to_write: float

    @property
    def frames(self) -> int:
        return self.scene.frames

    @property
    def fps(self) -> float:
        return self.scene.fps

    @property
    def size(self) -> tuple[int, int]:
        return self.scene.size

    @property
    def faces(self) -> int:
        return self.scene.faces

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    @property
    def mean_bitrate(self) -> float:
        """Bits per second of the whole file (container included)."""
        return 8.0 * self.bytes / max(self.duration_s, 1e-9)

    def face_states(self, i: int) -> list[FaceState]:
        """See :meth:`FaceScene.face_states`."""
        return self.scene.face_states(i)

    def intervals(self, state: str = "in", face: int = 0) -> list[tuple[int, int]]:
        """See :meth:`FaceScene.intervals`."""
        return self.scene.intervals(state, face)


@functools.lru_cache(maxsize=1)
def h264_available() -> str | None:
    """The name of a usable H.264 encoder in PyAV's bundled FFmpeg ("libx264" or "libopenh264"), else None.

    OpenCV's pip wheels ship FFmpeg without any H.264 encoder, so H.264 is only reachable through the optional
    ``av`` package.
    """
    try:
        import av
    except ImportError:
        return None
    for name in ("libx264", "libopenh264"):
        try:
            av.Codec(name, "w")
            return name
        except Exception:  # av raises its own UnknownCodecError, whose location moved between versions
            continue
    return None


def available_codecs() -> list[str]:
    """The values of ``codec`` that :func:`write_face_video` can use here ("mp4v" always, "h264" with PyAV)."""
    return ["mp4v"] + (["h264"] if h264_available() else [])


def write_face_video(path: str | os.PathLike, *, seconds: float | None = None, frames: int | None = None,
                     fps: float = 20.0, size: tuple[int, int] = (640, 360), faces: int = 1,
                     script: str | Script = "tour", codec: str = "mp4v", bitrate: int | None = None,
                     preset: str = "superfast", seed: int = 0, cycle_s: float | None = None,
                     flicker: float = 1.5, faststart: bool = True,
                     progress: Callable[[int, int], None] | None = None) -> VideoInfo:
    """Generate a synthetic face video at ``path``, streaming frames to the encoder one at a time.

    Length is ``seconds`` (rounded to whole frames) or ``frames``. ``faces``, ``script``, ``seed``, ``cycle_s`` and
    ``flicker`` describe the scene (see :class:`FaceScene` and :func:`tour_script`); by default one face moves,
    tilts, scales, turns, leaves the frame completely and comes back.

    ``codec``: ``"mp4v"`` (OpenCV's MPEG-4 Part 2 writer, always available; quality fixed by OpenCV, ``bitrate``
    ignored), ``"h264"`` (PyAV + libx264 at ``bitrate`` bits/s, default ~0.09 bit per pixel per frame, i.e. about
    2 Mbit/s for 1280x720 at 25 fps; raises RuntimeError when PyAV or its H.264 encoder is missing) or ``"auto"``
    (h264 when available, else mp4v). ``preset`` is x264's speed preset: the default "superfast" still gives a
    High-profile stream (CABAC, B-frames), so decoding it costs what an ordinary H.264 file costs, while encoding
    about twice as fast as "veryfast"; "ultrafast" is faster again but Constrained Baseline. With ``faststart`` the MP4 index (moov) is
    put before the media data, as web-ready files have it, so a truncated copy still opens. Memory stays bounded
    whatever the length: only one frame exists at a time.

    ``progress(done, total)`` is called every 100 frames and at the end. Returns :class:`VideoInfo`.
    """
    if (seconds is None) == (frames is None):
        raise ValueError("give exactly one of seconds= or frames=")
    n = int(round(seconds * fps)) if seconds is not None else int(frames)
    scene = FaceScene(size, fps, n, faces=faces, script=script, seed=seed, cycle_s=cycle_s, flicker=flicker)
    w, h = scene.size
    path = Path(path)
    if codec == "auto":
        codec = "h264" if h264_available() else "mp4v"
    t0 = time.perf_counter()
    if codec == "mp4v":
        if path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise ValueError(f"mp4v needs an .mp4/.m4v/.mov path, got {path.name}")
        _write_opencv(path, scene, "mp4v", progress)
        if faststart:
            mp4_faststart(path)
        encoder, used_bitrate = "opencv-mp4v", None
    elif codec == "h264":
        name = h264_available()
        if name is None:
            raise RuntimeError("H.264 needs the optional 'av' package (PyAV) with libx264 or libopenh264; "
                               "pip install av, or use codec='mp4v'")
        if w % 2 or h % 2:
            raise ValueError(f"H.264 (yuv420p) needs an even width and height, got {w}x{h}")
        used_bitrate = int(bitrate) if bitrate else max(200_000, int(0.09 * w * h * fps))
        _write_pyav(path, scene, name, used_bitrate, preset, faststart, progress)
        encoder = f"pyav-{name}"
    else:
        raise ValueError(f"unknown codec {codec!r}; use 'mp4v', 'h264' or 'auto'")
    elapsed = time.perf_counter() - t0
    return VideoInfo(path=path, scene=scene, codec=codec, encoder=encoder, bitrate=used_bitrate,
                     bytes=path.stat().st_size, seconds_to_write=elapsed)


def _write_opencv(path: Path, scene: FaceScene, fourcc: str, progress) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), scene.fps, scene.size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot open a {fourcc} writer for {path}")
    try:
        for i in range(scene.frames):
            writer.write(cv2.cvtColor(scene.render(i), cv2.COLOR_RGB2BGR))
            if progress and (i + 1) % 100 == 0:
                progress(i + 1, scene.frames)
    finally:
        writer.release()
    if progress:
        progress(scene.frames, scene.frames)


def _write_pyav(path: Path, scene: FaceScene, encoder: str, bitrate: int, preset: str, faststart: bool,
                progress) -> None:
    import av

    container_options = {"movflags": "+faststart"} if faststart and path.suffix.lower() in (".mp4", ".mov",
                                                                                          ".m4v") else {}
    with av.open(str(path), mode="w", container_options=container_options) as container:
        stream = container.add_stream(encoder, rate=Fraction(scene.fps).limit_denominator(1001))
        stream.width, stream.height = scene.size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bitrate
        if encoder == "libx264":
            # A VBV cap keeps the rate "ordinary" frame to frame, as a camera or a web upload would have it.
            stream.options = {"preset": preset, "maxrate": str(int(bitrate * 1.5)),
                              "bufsize": str(int(bitrate * 2))}
        for i in range(scene.frames):
            frame = av.VideoFrame.from_ndarray(scene.render(i), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            if progress and (i + 1) % 100 == 0:
                progress(i + 1, scene.frames)
        for packet in stream.encode(None):
            container.mux(packet)
    if progress:
        progress(scene.frames, scene.frames)


# --------------------------------------------------------------------------------------------------------------
# Faststart: the MP4 index in front, by remuxing through PyAV's FFmpeg
# --------------------------------------------------------------------------------------------------------------


def mp4_faststart(path: str | os.PathLike) -> bool:
    """Put an MP4's index (``moov``) in front of its media data in place, as ``ffmpeg -movflags +faststart`` does.

    OpenCV writes the index last; with it first, a file cut short still opens and decodes up to the cut, which is
    what a truncated download looks like. The streams are remuxed through PyAV (packets copied, nothing
    re-encoded), so the frames are the very ones OpenCV encoded. Returns False (file untouched) when the index
    already precedes the media data. Needs the optional ``av`` package (the ``test`` and ``bench`` extras).
    """
    path = Path(path)
    kinds = mp4_box_kinds(path)
    if "moov" not in kinds or "mdat" not in kinds or kinds.index("moov") < kinds.index("mdat"):
        return False
    try:
        import av
    except ImportError as e:
        raise RuntimeError("faststart needs the optional 'av' package (PyAV): pip install -e '.[test]', "
                           "or pass faststart=False") from e
    tmp = path.with_name(path.name + ".faststart.tmp" + path.suffix)
    with av.open(str(path)) as src, av.open(str(tmp), mode="w", format="mp4",
                                            container_options={"movflags": "+faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        for packet in src.demux(*[src.streams[i] for i in streams]):
            if packet.dts is None:  # the demuxer's end-of-stream marker, nothing to copy
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    os.replace(tmp, path)
    return True


def mp4_box_kinds(path: str | os.PathLike) -> list[str]:
    """The types of an MP4's top-level boxes in file order (``["ftyp", "moov", "mdat"]`` for a faststart file)."""
    path = Path(path)
    with open(path, "rb") as f:
        return [b[0] for b in _mp4_boxes(f, 0, path.stat().st_size)]


# --------------------------------------------------------------------------------------------------------------
# Bad media
# --------------------------------------------------------------------------------------------------------------


def write_zero_byte(path: str | os.PathLike) -> Path:
    """Create (or empty) ``path`` as a zero-byte file, e.g. ``empty.jpg`` or ``empty.mp4``."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_png_claiming(path: str | os.PathLike, width: int, height: int) -> Path:
    """A valid ~60-byte RGB PNG whose header announces ``width`` x ``height``: nothing to write, a lot to decode.

    For testing that huge images are refused from their header, before any pixel is decoded.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path = Path(path)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def write_random_bytes(path: str | os.PathLike, n: int = 4096, *, seed: int = 0) -> Path:
    """Fill ``path`` with ``n`` random bytes (no valid signature), e.g. ``noise.mp4`` or ``noise.jpg``."""
    path = Path(path)
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    # Make sure an accidental JPEG/PNG/MP4 signature cannot appear at the start.
    path.write_bytes(b"\x00NOTMEDIA" + data[9:] if n >= 9 else data)
    return path


def write_text_as(path: str | os.PathLike, text: str = "This is a text file, not an image.\n") -> Path:
    """Write plain text under a media name, e.g. ``notes.png``."""
    path = Path(path)
    path.write_text(text, encoding="utf-8")
    return path


def write_damaged_copy(src: str | os.PathLike, dst: str | os.PathLike, start: float = 0.4, end: float = 0.55,
                       *, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with the bytes from ``start`` to ``end`` (fractions of its size) replaced by noise: a
    damaged stretch in the middle of a video (a bad sector, a corrupt download) with good frames on either side."""
    data = bytearray(Path(src).read_bytes())
    a, b = int(len(data) * start), int(len(data) * end)
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def write_truncated_copy(src: str | os.PathLike, dst: str | os.PathLike, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst``, cutting the stream mid-way.

    For a faststart MP4 (what :func:`write_face_video` makes by default) the header survives and announces every
    frame, but only the frames before the cut decode: a truncated download. For an MP4 with its index at the end,
    the index is lost and the file does not open at all.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    src, dst = Path(src), Path(dst)
    keep = int(src.stat().st_size * fraction)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fo.write(fi.read(keep))
    return dst


# Hand-written MP4 byte surgery, kept ONLY to damage files on purpose for the reliability tests
# (write_corrupt_video overwrites the media data behind an intact header). No tool writes a broken file on request;
# anything that makes a valid file (faststart above) goes through PyAV/FFmpeg instead.


def _mp4_boxes(f, start: int, end: int) -> list[tuple[str, int, int, int]]:
    """Top-level boxes in [start, end) of an open file: (type, offset, size, header_size)."""
    boxes = []
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        boxes.append((kind.decode("latin-1"), pos, size, header))
        pos += size
    return boxes


def write_corrupt_video(src: str | os.PathLike, dst: str | os.PathLike, *, keep: float = 0.1,
                        seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with a valid header but garbage media data.

    For an MP4, every box (ftyp, moov) is kept byte for byte, so the file opens and reports its frame count, size
    and fps; the first ``keep`` fraction of the ``mdat`` payload is kept too and the rest is overwritten with
    random bytes of the same length. For other files the first ``keep`` fraction (at least 4 KiB) is kept and the
    rest randomised.
    """
    src, dst = Path(src), Path(dst)
    shutil.copyfile(src, dst)
    end = dst.stat().st_size
    rng = np.random.default_rng(seed)
    with open(dst, "r+b") as f:
        boxes = _mp4_boxes(f, 0, end)
        mdats = [b for b in boxes if b[0] == "mdat"]
        if mdats and boxes[0][0] == "ftyp":
            _, offset, size, header = mdats[0]
            payload = size - header
            start = offset + header + int(payload * keep)
            stop = offset + size
        else:
            start = max(4096, int(end * keep))
            stop = end
        pos = start
        while pos < stop:
            n = min(stop - pos, 1 << 22)
            f.seek(pos)
            f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            pos += n
    return dst


def probe_faces(folder: str | os.PathLike, *, jittered: int = 200, seed: int = 0) -> np.ndarray:
    """(N, 48, 48, 1) uint8 faces on which a converted classifier must give its float model's class (about 235).

    The faces ``analyze`` cuts (detected and aligned) from :data:`FACE_VIDEO` and the three-face photo, written into
    ``folder``, then ``jittered`` crops of Grace Hopper that are off-centre, too tight or too loose: less confident
    faces than the aligned ones, where a small change in the probabilities flips the class. The int8 bar of
    ``tests/test_shipped_models.py`` is judged on these, and ``training/ship_model.py --tflite-int8`` checks a
    candidate on them before it ships.
    """
    import cv2

    from fer_batch.config import AnalyzeConfig
    from fer_batch.detect import FaceDetector
    from fer_batch.pipeline import frame_items
    from fer_batch.sources import Source

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    video = write_face_video(folder / "probe_video.mp4", **FACE_VIDEO).path
    photo = save_image(folder / "probe_three_faces.jpg", photo_faces(3, seed=0).rgb, quality=92)
    crops = []
    with FaceDetector() as detector:
        for path, media in ((video, "video"), (photo, "image")):
            for item in frame_items(Source(Path(path), str(path), media), AnalyzeConfig(), detector):
                crops.extend(item.crops)
    gray = cv2.cvtColor(grace_hopper_rgb(), cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(seed)
    for _ in range(jittered):
        side = int(rng.uniform(0.3, 0.7) * min(gray.shape))
        x, y = rng.integers(0, gray.shape[1] - side), rng.integers(0, gray.shape[0] - side)
        crops.append(cv2.resize(gray[y:y + side, x:x + side], (48, 48), interpolation=cv2.INTER_AREA)[..., None])
    return np.stack(crops)


def write_joined_sizes(path: str | os.PathLike, sizes: Sequence[tuple[int, int]], *, frames: int = 20,
                       fps: float = 20.0, seed: int = 0, script: str | Script = "tour") -> list[FaceScene]:
    """An MPEG-TS video whose frame size changes mid-stream: one H.264 face video per size in ``sizes``, ``frames``
    frames each, their bytes joined end to end (as recordings of an adaptive stream are, or ``cat a.ts b.ts``).
    Returns the scenes, in order: frame ``k * frames + i`` of the file is frame ``i`` of scene ``k``. Raises
    RuntimeError without PyAV's H.264 encoder."""
    if not h264_available():
        raise RuntimeError("write_joined_sizes needs PyAV with libx264")
    path = Path(path)
    scenes, data = [], b""
    for k, size in enumerate(sizes):
        part = path.with_name(f".{path.stem}.part{k}.ts")
        scenes.append(write_face_video(part, frames=frames, fps=fps, size=size, codec="h264", seed=seed,
                                       script=script).scene)
        data += part.read_bytes()
        part.unlink()
    path.write_bytes(data)
    return scenes


def write_rotated_copy(src: str | os.PathLike, dst: str | os.PathLike, turns: int) -> Path:
    """Re-encode ``src`` (H.264 through PyAV) stored turned ``turns`` quarter turns clockwise, with the display-rotation
    tag that shows it upright again, as a phone held sideways records; ``turns=0`` is a plain re-encode, the control.
    Raises RuntimeError without PyAV's H.264 encoder."""
    if not h264_available():
        raise RuntimeError("write_rotated_copy needs PyAV with libx264")
    import av

    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        rate = vin.average_rate or Fraction(25)
        w, h = vin.codec_context.width, vin.codec_context.height
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height = (h, w) if turns % 2 else (w, h)
        vout.pix_fmt = "yuv420p"
        vout.options = {"preset": "superfast", "crf": "18"}
        if turns % 4:
            vout.set_display_rotation(90 * (turns % 4))  # counter-clockwise: undoes the clockwise turns
        for frame in inp.decode(vin):
            rgb = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), -turns))
            for packet in vout.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in vout.encode(None):
            out.mux(packet)
    return dst
