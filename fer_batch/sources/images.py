"""Decoding image files with Pillow: photos (EXIF orientation honoured; grey, 16-bit, palette, CMYK and alpha made
RGB) and the frames of animated images (GIF, APNG, WebP, a TIFF's pages), each at its own time."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import InputError
from .media import MULTI_FRAME_SUFFIXES, Source, check_readable

def read_image(source: Source, max_pixels: int = 100_000_000) -> np.ndarray:
    """Decode an image to RGB uint8, honouring EXIF orientation and converting gray, 16-bit, palette, CMYK, alpha."""
    from PIL import Image, UnidentifiedImageError

    from ..threads import warnings_ignored

    check_readable(source)
    try:
        # Opening reads the header and EXIF only: PIL's DecompressionBombWarning (we apply our own limit below) and
        # its complaints about odd EXIF come from here, so only this part holds the warnings lock (which keeps such
        # blocks in turn across threads, see warnings_ignored); the decode itself runs in parallel with other workers.
        with warnings_ignored():
            im = Image.open(source.path)
            try:
                w, h = im.size
                if w * h > max_pixels:
                    raise InputError(source.name, f"image is {w}x{h} ({w * h / 1e6:.0f} megapixels), above the "
                                                  f"{max_pixels / 1e6:.0f}-megapixel limit")
                im.getexif()  # parsed (and kept) here, where its warnings are held back
            except BaseException:
                im.close()
                raise
        with im:
            return to_rgb(upright(im)[0])
    except InputError:
        raise
    except UnidentifiedImageError:
        kind = sniff_container(source.path)
        hint = f"; its bytes are {kind}: give it that format's suffix" if kind else " (unknown or corrupt format)"
        raise InputError(source.name, f"not a readable image{hint}") from None
    except Image.DecompressionBombError as exc:
        raise InputError(source.name, f"image too large to decode safely ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(source.name, f"corrupt or truncated image ({exc})") from None


EXIF_ORIENTATION = 0x0112  # the EXIF tag
#: EXIF orientation -> the ``PIL.Image.Transpose`` that shows the photo upright (as ``ImageOps.exif_transpose``).
_EXIF_TURNS = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
               7: "TRANSVERSE", 8: "ROTATE_90"}


def upright(im) -> tuple:
    """``im`` decoded and turned upright by its EXIF orientation, and the ``PIL.Image.Transpose`` name of the turn
    (None for none).

    Decoded first, the orientation read after: Pillow turns a TIFF (each page by its own tag) while decoding it and
    drops the tag, so a turn taken from the tag before decoding would turn the TIFF a second time."""
    from PIL import Image

    im.load()
    turn = exif_turn(im.getexif().get(EXIF_ORIENTATION, 1))
    return (im if turn is None else im.transpose(getattr(Image.Transpose, turn))), turn


def exif_turn(orientation) -> str | None:
    """The ``PIL.Image.Transpose`` name that shows a photo upright, for its EXIF orientation value; None for 1 and
    for a value that equals none of 2-8 (text, two numbers: a malformed tag turns nothing, wherever it is read)."""
    try:
        return _EXIF_TURNS.get(orientation)
    except TypeError:  # unhashable
        return None


#: Leading bytes of video containers that a file named as an image may really hold.
_VIDEO_MAGIC = ((4, b"ftyp", "an MP4/MOV video (.mp4, .mov)"), (0, b"\x1a\x45\xdf\xa3", "a Matroska/WebM video (.mkv, "
                ".webm)"), (8, b"AVI ", "an AVI video (.avi)"))
#: ISO-BMFF brands of still images (HEIF, AVIF), which share MP4's ``ftyp`` box.
_IMAGE_BRANDS = (b"heic", b"heix", b"heif", b"mif1", b"msf1", b"avif", b"avis")


def sniff_container(path: Path) -> str | None:
    """What video container ``path``'s first bytes announce (for a file that failed to open as an image), or
    None: a renamed clip gets a message that says so instead of "corrupt"."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    for offset, magic, kind in _VIDEO_MAGIC:
        if head[offset:offset + len(magic)] == magic:
            if magic == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
                return None
            return kind
    return None


def has_alpha(im) -> bool:
    """Whether a PIL image has transparent pixels to reckon with: an alpha channel, or one colour (a palette entry,
    or a PNG's single grey or RGB value: its tRNS chunk) that stands for transparent."""
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def to_rgb(im) -> np.ndarray:
    """A PIL image's pixels as RGB uint8, as every reader of images (analysis, annotation, training folders) sees
    them: 16-bit grey mapped from 0..65535, transparency composited onto white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # A float image's NaN or infinite pixels read as black or white (not a cast warning on stderr per image).
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
        # 16-bit data: map the full 0..65535 onto 0..255 (not the image's own maximum, which would stretch a dark
        # image's contrast). Modes "I" and "F" hold either 8- or 16-bit values: above 255 means 16-bit.
        if im.mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if has_alpha(im):
        # Composite transparent pixels onto white rather than whatever colour they happen to store.
        from PIL import Image

        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        im = canvas
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def is_animation(source: Source) -> bool:
    """Whether a video source is an image file with several frames, decoded by PIL (:func:`animation_frames`)."""
    return source.media == "video" and source.path.suffix.lower() in MULTI_FRAME_SUFFIXES


class AnimationFrame(NamedTuple):
    """One frame of an animated image (:func:`animation_frames`)."""

    index: int
    time_s: float | None  # seconds from the start; None for pages without durations (a TIFF's)
    duration_s: float | None  # how long it is shown; None where the file has no durations
    pixels: Callable[[], np.ndarray]  # its RGB pixels, to be asked for before the next frame is taken


# Formats whose frames are played for 100 ms where they give 10 ms or less, or no duration, as Firefox and Chromium
# play them (and FFmpeg a GIF): a 0 ms frame would otherwise share its time with the next one
_TIMED_FORMATS = frozenset({"GIF", "PNG", "WEBP"})


def animation_frames(source: Source, max_pixels: int = 100_000_000) -> Iterator[AnimationFrame]:
    """Every frame of an animated image, in order.

    A frame's time is the sum of the durations of the frames before it; pages without durations (a TIFF's) have
    None, counted as index / 30 s where a time is needed, as for a video without timestamps; a GIF, APNG or WebP
    frame of 10 ms or less, or without a duration, is shown for 100 ms, as browsers play it. An APNG's default image,
    which players do not show when they animate, is left out. Frames are turned upright by the file's EXIF
    orientation, as a photo is. Pixels are converted only when asked for: a frame left out by the sampling costs its
    decoding alone (each may be drawn over the one before, so none is skipped). A frame that cannot be decoded, or
    is over ``max_pixels``, raises :class:`InputError` after the frames before it.
    """
    from PIL import Image, UnidentifiedImageError

    from ..threads import warnings_ignored

    check_readable(source)
    try:
        with warnings_ignored():
            im = Image.open(source.path)
    except UnidentifiedImageError:
        raise InputError(source.name, "not a readable image (unknown or corrupt format)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds (DecompressionBombError among them)
        raise InputError(source.name, f"corrupt or truncated image ({exc})") from None
    with im:
        first = 1 if getattr(im, "default_image", False) else 0
        t = 0.0
        timed = None
        index = 0
        while True:
            try:
                if index + first:
                    im.seek(index + first)
                im.load()
            except EOFError:
                return
            except Exception as exc:  # noqa: BLE001 - as above: OSError, ValueError, struct.error, a bomb
                raise InputError(source.name, f"frame {index} could not be decoded ({exc}); the frames before it were "
                                              "analysed and their rows kept") from None
            w, h = im.size  # each frame's own: a TIFF's later page may be larger than its first
            if w * h > max_pixels:
                raise InputError(source.name, f"frame {index} is {w}x{h}, above the {max_pixels / 1e6:.0f}-megapixel "
                                              "limit; the frames before it were analysed and their rows kept")
            duration = im.info.get("duration")
            known = isinstance(duration, (int, float)) and math.isfinite(duration) and duration >= 0
            if im.format in _TIMED_FORMATS and not (known and duration > 10):
                duration, known = 100, True
            if timed is None:  # the file is timed or not as its first frame is (a later frame without one lasts 0)
                timed = known
            lasts = duration / 1000.0 if timed and known else (0.0 if timed else None)

            def pixels(index=index):
                try:
                    return to_rgb(upright(im)[0])  # a TIFF's page by its own orientation (see upright)
                except Exception as exc:  # noqa: BLE001 - a mode Pillow decodes but cannot convert
                    raise InputError(source.name, f"frame {index} could not be converted ({exc})") from None

            yield AnimationFrame(index, t if timed else None, lasts, pixels)
            t += lasts or 0.0
            index += 1
