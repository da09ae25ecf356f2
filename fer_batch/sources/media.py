"""What a source is: a media file by its suffix (an image or a video), and the frames decoded from it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, UsageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".mts",
                            ".m2ts", ".ts"})
#: Suffixes that other kinds of files share: such a file is a video only where its bytes say so (``.ts``: an MPEG
#: transport stream, as HLS recordings and broadcast captures are stored, or a TypeScript source).
SNIFFED_VIDEO_SUFFIXES = frozenset({".ts"})


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


#: Frames a second assumed for a video without usable timestamps (nor header fps): --fps sampling, the tracker's
#: time and the charts' and summary's smoothing count frame index / NO_TIMESTAMP_FPS seconds (README).
NO_TIMESTAMP_FPS = 30.0


def check_readable(source: Source) -> None:
    """Refuse a file that cannot be decoded before a decoder is asked: gone, empty or unreadable."""
    try:
        size = source.path.stat().st_size
    except OSError as exc:
        raise InputError(source.name, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError(source.name, "empty file (0 bytes)")
    if not os.access(source.path, os.R_OK):
        raise InputError(source.name, "permission denied")
