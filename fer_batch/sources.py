"""Finding media files and turning each into a stream of RGB frames.

Directories are walked recursively in sorted order, hidden entries skipped and symlink loops survived. Images give
one frame; videos (and image files of several frames: animated GIF, PNG, WebP, TIFF pages) give the frames chosen
by ``every``/``fps``, counted as they decode (header frame counts and frame rates are hints, not facts). Skipped
video frames are grabbed without colour conversion.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .config import as_paths
from .errors import InputError, UsageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
#: Image suffixes whose files may hold several frames (animated GIF, PNG and WebP, a TIFF's pages). Such a file is
#: analysed as a video, every frame at its own time; PIL decodes its frames (:func:`animation_frames`), for the
#: analysis, the report's thumbnails and the annotated copy alike, as FFmpeg decodes neither an animated WebP nor a
#: TIFF's later pages.
MULTI_FRAME_SUFFIXES = frozenset({".gif", ".png", ".webp", ".tif", ".tiff"})


#: The kinds of media a source can be.
MEDIA = ("image", "video")


def media_error(what: str, media) -> UsageError:
    """The error for a media kind that is not one of MEDIA, which every dispatch on a kind raises."""
    return UsageError(f"{what} {media!r} is not allowed; choose one of {', '.join(MEDIA)}")


@dataclass(frozen=True)
class Source:
    """One media file. ``name`` is how it appears in outputs: the path as given, or below a given directory."""

    path: Path
    name: str
    media: str  # one of MEDIA

    def __post_init__(self):
        if self.media not in MEDIA:  # what reads it (decoding, annotating, thumbnails) dispatches on it
            raise media_error("Source media", self.media)


@dataclass
class Discovery:
    """What walking the input paths found."""

    sources: list[Source] = field(default_factory=list)
    # (name, reason) for named non-media files and for directories that cannot be listed
    rejected: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0  # files inside directories that are not media by their suffix
    duplicates: int = 0  # media files reached a second time (a symlink, overlapping inputs): analysed once
    duplicate_dirs: int = 0  # folders reached a second time within one input (a symlink to one met before): walked once


#: Written into the folders a run fills (``--annotate``, ``--charts``): a later walk, of any run, does not go into a
#: folder holding it, so annotated copies and chart PNGs are never analysed as inputs.
OUTPUT_MARKER = ".fer-batch-output"


def mark_output_dir(directory: Path) -> None:
    """Create ``directory`` (and its parents) as an output folder: see :data:`OUTPUT_MARKER`."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / OUTPUT_MARKER
    if not marker.exists():
        marker.write_text("Written by fer-batch: this folder holds its outputs, and input walks skip it.\n",
                          encoding="utf-8")


def media_kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def frames_kind(path: Path, kind: str) -> str:
    """The media of a file whose suffix says ``kind``: "video" for an image file with several frames.

    Opens the GIF, PNG, WebP and TIFF files to count their frames (a look at the header, or at the start of a
    GIF's second frame); a file that cannot be opened, or is not a regular file (a named pipe would wait for a
    writer), stays a photo, whose decoding then says what is wrong."""
    suffix = path.suffix.lower()
    if kind != "image" or suffix not in MULTI_FRAME_SUFFIXES or not_a_regular_file(path) is not None:
        return kind
    frames = _png_frames(path) if suffix == ".png" else None
    if frames is not None:  # an archive of PNG photos: a few bytes read each, a third of the time PIL takes to open
        return "video" if frames > 1 else "image"
    from PIL import Image

    from .threads import warnings_ignored

    try:
        with warnings_ignored(), Image.open(path) as im:
            several = bool(getattr(im, "is_animated", False))
    except Exception:  # PIL raises many kinds for a damaged file (as read_image expects)
        return kind
    return "video" if several else kind


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

    from .threads import warnings_ignored

    _check_nonempty(source)
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


def _png_frames(path: Path) -> int | None:
    """The frames of a PNG as PIL counts them (1 without an animation control chunk; the animation's frames, and its
    default image where that is not the first of them); None where the file does not start as a PNG or cannot be
    read, for PIL to look at."""
    import struct

    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            frames = None
            for _ in range(256):  # acTL comes before the first image data, after a few metadata chunks
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, chunk = struct.unpack(">I4s", head)
                if chunk == b"acTL":
                    body = f.read(4)
                    if len(body) < 4:
                        return None
                    frames = struct.unpack(">I", body)[0]
                    f.seek(length, os.SEEK_CUR)  # the rest of the chunk and its CRC
                    continue
                if chunk == b"fcTL" and frames is not None:  # the default image is the animation's first frame
                    return frames
                if chunk == b"IDAT":  # a still PNG, or an animation whose default image is a poster players skip
                    return 1 if frames is None else frames + 1
                f.seek(length + 4, os.SEEK_CUR)  # the chunk's data and CRC
    except OSError:
        return None
    return None


def discover(paths, *, skip_dirs=()) -> Discovery:
    """Expand files and directories into a deterministic list of media sources.

    A file named explicitly that is not media by its suffix is rejected with a reason; inside directories such
    files are only counted, so a stray README does not fail a batch. One path may be given on its own (a ``str``
    or path-like): iterating a string would otherwise walk each of its characters, "/" among them.
    ``skip_dirs``: folders not walked into when met inside a given directory, such as the run's own output
    folders (``--annotate``, ``--charts``), whose copies and charts would otherwise be analysed by the next run.
    """
    paths = as_paths(paths)
    found = Discovery()
    seen: set[str] = set()
    skip = {os.path.realpath(d) for d in skip_dirs if d is not None}

    def add(path: Path, name: str, explicit: bool):
        kind = media_kind(path)
        if kind is None:
            if explicit:
                found.rejected.append((name, f"not a supported image or video file (suffix {path.suffix or 'none'!r})"))
            else:
                found.skipped += 1
            return
        key = os.path.realpath(path)
        if key in seen:
            found.duplicates += 1
            return
        seen.add(key)
        odd = not_a_regular_file(path)
        if odd is not None:  # a decoder would wait on a named pipe for ever, or read a device without end
            found.rejected.append((name, f"not a regular file ({odd})"))
            return
        kind = frames_kind(path, kind)
        found.sources.append(Source(path=path, name=name, media=kind))

    def again(name: str) -> None:
        found.duplicate_dirs += 1

    for given in paths:
        root = Path(given)
        if root.is_dir():
            _walk(root, str(given), add, visited=set(), reject=found.rejected.append, skip=skip, again=again)
        else:
            add(root, str(given), explicit=True)
    return found


def not_a_regular_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (after symlinks): "a named pipe", "a socket", "a device"."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # gone or unreadable: reading it says which, as for any other file
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


#: Folders deeper than this below a given folder are not walked, but named as an error: a tree that deep (or a
#: chain of folder links) is a mistake, and Python's recursion limit ended the whole run at about 990.
MAX_WALK_DEPTH = 200


def _walk(directory: Path, name: str, add, visited: set, reject, skip: set = frozenset(), again=None,
          ancestors: tuple = ()) -> None:
    if len(ancestors) > MAX_WALK_DEPTH:
        reject((name, f"more than {MAX_WALK_DEPTH} folders below the folder given: not walked"))
        return
    try:
        st = directory.stat()
    except OSError as exc:  # a path too long, a stale network handle: an error row, not a subtree silently gone
        reject((name, f"cannot read directory ({exc.strerror or exc})"))
        return
    key = (st.st_dev, st.st_ino)
    if key in visited:  # the same directory reached twice (counted), or a symlink loop back to an ancestor (not)
        if again is not None and key not in ancestors:
            again(name)
        return
    visited.add(key)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:  # an unreadable directory is an error, not a silent gap in the results
        reject((name, f"cannot read directory ({exc.strerror or exc})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        child = Path(entry.path)
        child_name = os.path.join(name, entry.name)
        try:
            is_dir = entry.is_dir()  # follows symlinks; loops are caught by `visited`
        except OSError:
            is_dir = False
        if is_dir:
            if (skip and os.path.realpath(child) in skip) or os.path.exists(os.path.join(child, OUTPUT_MARKER)):
                continue
            _walk(child, child_name, add, visited, reject, skip, again, (*ancestors, key))
        else:
            add(child, child_name, explicit=False)


@dataclass(frozen=True)
class Frame:
    """One analysed frame: its index in the decoded stream, its time in seconds (None for images), RGB pixels.

    A video frame read with ``bgr=True`` keeps OpenCV's BGR pixels in ``bgr`` and has ``rgb=None``: converting a
    whole frame costs more than converting the reduced copy detection needs and the crops cut from it.
    """

    index: int
    time_s: float | None
    rgb: np.ndarray | None
    bgr: np.ndarray | None = None


def _check_nonempty(source: Source) -> None:
    try:
        size = source.path.stat().st_size
    except OSError as exc:
        raise InputError(source.name, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError(source.name, "empty file (0 bytes)")
    if not os.access(source.path, os.R_OK):
        raise InputError(source.name, "permission denied")


def read_image(source: Source, max_pixels: int = 100_000_000) -> np.ndarray:
    """Decode an image to RGB uint8, honouring EXIF orientation and converting gray, 16-bit, palette, CMYK, alpha."""
    from PIL import Image, UnidentifiedImageError

    from .threads import warnings_ignored

    _check_nonempty(source)
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
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Composite transparent pixels onto white rather than whatever colour they happen to store.
        from PIL import Image

        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        im = canvas
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


#: Frames a second assumed for a video without usable timestamps (nor header fps): --fps sampling, the tracker's
#: time and the charts' and summary's smoothing count frame index / NO_TIMESTAMP_FPS seconds (README).
NO_TIMESTAMP_FPS = 30.0


def _valid_fps(fps: float) -> bool:
    return math.isfinite(fps) and 0.5 <= fps <= 1000.0


def probe_video(source: Source) -> dict:
    """Header facts of a video (frame count, fps, size); hints only, used for progress bars."""
    import cv2

    if is_animation(source):
        from PIL import Image

        from .threads import warnings_ignored

        with warnings_ignored():
            im = Image.open(source.path)
        with im:  # a GIF's count reads the whole file: not under the lock other workers' photo opens wait on
            frames = int(getattr(im, "n_frames", 1)) - (1 if getattr(im, "default_image", False) else 0)
            return {"frames": frames, "width": im.size[0], "height": im.size[1]}

    cap = open_video(source.path)  # as it will be decoded: the same backend, and OpenCV's open warnings held back
    try:
        if not cap.isOpened():
            return {}
        return {
            "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        }
    finally:
        cap.release()


def iter_frames(source: Source, every: int = 1, fps: float | None = None,
                max_pixels: int = 100_000_000, *, bgr: bool = False) -> Iterator[Frame]:
    """Yield the frames of ``source`` that are to be analysed (video frames in BGR with ``bgr=True``)."""
    if source.media == "image":
        yield Frame(index=0, time_s=None, rgb=read_image(source, max_pixels))
        return
    if source.media != "video":
        raise media_error("Source media", source.media)
    if is_animation(source):
        yield from _iter_animation(source, every, fps, max_pixels, bgr=bgr)
        return
    yield from _iter_video(source, every, fps, max_pixels, bgr=bgr)


def _iter_animation(source: Source, every: int, sample_fps: float | None, max_pixels: int, *,
                    bgr: bool = False) -> Iterator[Frame]:
    """The frames of an animated image that ``every`` / ``sample_fps`` choose, as :func:`_iter_video` chooses them."""
    wanted = _Sampling(every, sample_fps)
    for index, t, _, pixels in animation_frames(source, max_pixels):
        if not wanted(index, t):
            continue
        rgb = pixels()
        yield Frame(index=index, time_s=t, rgb=None, bgr=np.ascontiguousarray(rgb[:, :, ::-1])) if bgr else \
            Frame(index=index, time_s=t, rgb=rgb)


def open_video(path: Path):
    """A ``cv2.VideoCapture`` for decoding ``path``, with :func:`~fer_batch.threads.decoder_threads` FFmpeg threads.

    The thread count is an open parameter of the FFmpeg backend; other backends do not take it, so they open the
    file without it (OpenCV refuses parameters a backend does not know).
    """
    import cv2

    from .threads import decoder_threads

    # A file the named backend cannot open makes OpenCV warn on stderr ("can't be used to capture by name"); the
    # caller reports that file itself, so OpenCV's warning is held back for these two calls only.
    with _OPEN_LOCK, _utf8_name(path) as name:  # workers open files concurrently: each restores the process's level
        level = cv2.getLogLevel()
        cv2.setLogLevel(2)  # errors only
        try:
            cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, decoder_threads()])
            if not cap.isOpened():
                cap.release()
                cap = cv2.VideoCapture(name)
        finally:
            cv2.setLogLevel(level)
    # Phone videos are stored sideways with a display-rotation tag; this OpenCV build does not apply it unless asked
    # (CAP_PROP_ORIENTATION_AUTO reads 0), and a sideways face is one BlazeFace mostly misses. Upright frames are
    # also what players show, so boxes match the video as people see it. (The FFmpeg backend only reads it after
    # opening: as an open parameter it makes the open fail.)
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


_OPEN_LOCK = threading.Lock()


@contextlib.contextmanager
def _utf8_name(path: Path) -> Iterator[str]:
    """``path`` as a name OpenCV can take. A file name whose bytes are not UTF-8 (Python gives them as lone
    surrogates) crashes OpenCV's VideoCapture with a segmentation fault, ending the whole run; such a file is opened
    through a symbolic link with a plain name instead, removed once OpenCV holds the file open."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    with tempfile.TemporaryDirectory(prefix="fer-batch-") as folder:
        link = os.path.join(folder, "video" + "".join(c for c in path.suffix if c.isascii() and c.isprintable()))
        try:
            os.symlink(os.path.abspath(path), link)
        except OSError as exc:
            raise InputError(text.encode("utf-8", "backslashreplace").decode(),
                             f"its name is not valid UTF-8, which OpenCV cannot open, and a link with a plain "
                             f"name could not be made ({exc.strerror}); rename the file") from None
        yield link


def _iter_video(source: Source, every: int, sample_fps: float | None, max_pixels: int, *,
                bgr: bool = False) -> Iterator[Frame]:
    import cv2

    _check_nonempty(source)
    cap = open_video(source.path)
    try:
        if not cap.isOpened():
            raise InputError(source.name, "cannot open as a video (unsupported or corrupt container)")
        header_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        header_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps_ok = _valid_fps(header_fps)
        clock = _VideoClock(header_fps if fps_ok else None)
        index = -1
        wanted = _Sampling(every, sample_fps)
        gaps: list[tuple[int, int]] = []  # (first frame, frames) that could not be decoded, with good frames after
        while True:
            if not cap.grab():
                # A damaged stretch fails frame by frame (one failed grab a frame) and decoding resumes after it, so
                # go on while the header says frames remain; at the true end grabs keep failing, at once.
                failed = 1
                limit = min(header_frames - (index + 1), MAX_UNDECODABLE_RUN)
                while failed < limit and not cap.grab():
                    failed += 1
                if failed >= limit:
                    break
                gaps.append((index + 1, failed))
                index += failed  # the frames after the gap keep their own numbers
            index += 1
            t = clock.time(index, cap.get(cv2.CAP_PROP_POS_MSEC))
            if not wanted(index, t):
                continue
            ok, pixels = cap.retrieve()
            if not ok or pixels is None:
                break
            if pixels.shape[0] * pixels.shape[1] > max_pixels:
                raise InputError(source.name, f"video frames are {pixels.shape[1]}x{pixels.shape[0]}, above the "
                                              f"{max_pixels / 1e6:.0f}-megapixel limit")
            frame = Frame(index=index, time_s=t, rgb=None, bgr=pixels) if bgr else \
                Frame(index=index, time_s=t, rgb=cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
            pixels = None  # while suspended, hold no frame: the consumer decides how long it lives
            yield frame
            frame = None
        decoded = index + 1
        if decoded == 0:
            raise InputError(source.name, "no frame could be decoded (corrupt, truncated or not a video)")
        short = _short_of_header(decoded, header_frames, header_fps if fps_ok else None, clock.reached())
        if short is not None:
            raise InputError(source.name, f"video ended after {decoded} of the {header_frames} frames its header "
                                          f"announces (truncated or corrupt){short}; rows up to there were kept"
                                          f"{_gaps_text(gaps, '; earlier, ')}")
        if gaps:
            raise InputError(source.name, f"{_gaps_text(gaps)}; the frames around them were analysed and their rows "
                                          "kept")
    finally:
        cap.release()


#: Consecutive frames that fail to decode after which a video is taken to have ended (where its header announces
#: more): failed grabs cost little (2,000 in under 0.4 s on the project's machine).
MAX_UNDECODABLE_RUN = 10_000


def _gaps_text(gaps: list[tuple[int, int]], lead: str = "") -> str:
    """"847 frames could not be decoded (422-1,268)": the damaged stretches of a video, for its error row."""
    from .wording import count

    if not gaps:
        return ""
    spans = ", ".join(f"{first:,}-{first + n - 1:,}" if n > 1 else f"{first:,}" for first, n in gaps[:5])
    more = f" and {len(gaps) - 5} more stretches" if len(gaps) > 5 else ""
    return f"{lead}{count(sum(n for _, n in gaps), 'frame')} could not be decoded ({spans}{more})"


class _Sampling:
    """Which decoded frames are analysed: with ``fps``, the first at or after each 1 / ``fps`` seconds of the
    frames' own times (frame index / 30 s where a frame has none, as README documents); else every ``every``-th."""

    def __init__(self, every: int, fps: float | None):
        self.every, self.fps = every, fps
        self.next_t = 0.0

    def __call__(self, index: int, t: float | None) -> bool:
        if self.fps is None:
            return index % self.every == 0
        t_eff = t if t is not None else index / NO_TIMESTAMP_FPS
        if t_eff + 1e-6 < self.next_t:
            return False
        self.next_t = _next_sample(self.next_t, t_eff, self.fps)
        return True


def _next_sample(next_t: float, t: float, fps: float) -> float:
    """The first sampling time after ``t``, stepping from ``next_t`` (<= t) by 1 / ``fps``.

    Steps one interval at a time, as the sampling has always been defined; a long gap (a stream whose timestamps
    jump far ahead) is crossed in one step, so that a corrupt timestamp cannot keep decoding busy for minutes.
    """
    step = 1.0 / fps
    gap = t + 1e-6 - next_t
    if gap > 1000 * step:
        next_t += (math.floor(gap / step) - 1) * step
    for _ in range(1002):  # at most 1,001 steps are left after the jump
        if next_t > t + 1e-6:
            return next_t
        next_t += step
    # Only past float resolution (a timestamp of ~10^15 s and more), where adding a step changes nothing.
    return math.nextafter(t + 1e-6, math.inf)


def _short_of_header(decoded: int, header_frames: int, fps: float | None, reached_s: float | None) -> str | None:
    """Whether decoding stopped well short of what the header announces: None if not, else a note for the error.

    The header's frame count is a hint: for MKV/WebM, which store no count, OpenCV estimates it as duration x fps,
    so a valid variable-frame-rate file can announce three times the frames it has. A file is called truncated
    only when both the frame count and the playback time (the last frame's time plus one frame interval, against
    the header's count / fps) fall short. A file without timestamps gets index / fps times, so for it the time
    test repeats the count test; without a usable header fps only the count can be compared.
    """
    if header_frames <= 0 or decoded >= 0.9 * header_frames or header_frames - decoded <= 5:
        return None
    if fps is None or reached_s is None:
        return ""
    duration = header_frames / fps
    if reached_s >= 0.9 * duration or duration - reached_s <= 5 / fps:
        return None
    return f", {reached_s:.1f} s into its {duration:.1f} s"


class _VideoClock:
    """Seconds from the start of each decoded frame, from the container's timestamps (CAP_PROP_POS_MSEC).

    A timestamp that increases on the last accepted one is used as it is. One that does not (a duplicate from a
    coarse time base, a glitch, or a file without timestamps, for which OpenCV reports 0 for every frame) is
    repaired on its own: extrapolated from the last accepted timestamp at the frame interval measured between the
    last two accepted ones, capped at 1 / header fps (so one long gap between timestamps does not make the repairs
    after it leap ahead). Later timestamps are still compared with the last accepted one, not with repaired times,
    so one bad value does not discard the rest. Times returned never decrease (smoothing and charts need sorted
    times).

    What stays approximate: a repaired frame's time is an extrapolation (OpenCV exposes no look-ahead to
    interpolate), so frames that share a coarse timestamp are spread at the recent rate and the next real timestamp
    may be held back to the last repaired time; a file without timestamps gets index / header fps, and None when
    its header fps is unusable too (sampling then counts index / 30 s, as documented); a single timestamp far
    ahead of the rest shifts every later frame by that much.
    """

    def __init__(self, header_fps: float | None):
        self.step_cap = 1.0 / header_fps if header_fps else None
        self.step = self.step_cap  # seconds per frame between the last two accepted timestamps
        self.anchor: tuple[int, float] | None = None  # (index, seconds) of the last accepted timestamp
        self.last: float | None = None

    def time(self, index: int, msec: float | None) -> float | None:
        raw = msec / 1000.0 if msec is not None and math.isfinite(msec) and msec >= 0 else None
        if raw is not None and (self.anchor is None or raw > self.anchor[1]):
            if self.anchor is not None:
                step = (raw - self.anchor[1]) / (index - self.anchor[0])
                self.step = min(step, self.step_cap) if self.step_cap else step
            self.anchor = (index, raw)
            t = raw
        elif self.anchor is not None and self.step is not None:
            t = self.anchor[1] + (index - self.anchor[0]) * self.step
        elif self.step_cap is not None:
            t = index * self.step_cap
        else:
            return None
        if self.last is not None:
            t = max(t, self.last)
        self.last = t
        return t

    def reached(self) -> float | None:
        """How far playback got: the last frame's time plus one frame interval; None if no time is known."""
        if self.last is None:
            return None
        return self.last + (self.step or 0.0)
