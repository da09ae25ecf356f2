"""Finding media files and turning each into a stream of RGB frames.

Images give one frame; videos (and image files of several frames: animated GIF, PNG, WebP, TIFF pages) give the
frames chosen by ``every``/``fps``. One module a job: :mod:`.media` (what a source and a frame are),
:mod:`.discovery` (walking the paths), :mod:`.images` (Pillow), :mod:`.video` (OpenCV); this module chooses between
the decoders.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .discovery import (MAX_WALK_DEPTH, OUTPUT_MARKER, Discovery, discover, frames_kind, mark_output_dir,
                        media_kind, not_a_regular_file, not_media_reason,
                        supported_suffixes)
from .images import (EXIF_ORIENTATION, AnimationFrame, animation_frames, exif_turn, has_alpha, is_animation,
                     read_image, sniff_container, to_rgb, upright)
from .media import (IMAGE_SUFFIXES, MEDIA, MULTI_FRAME_SUFFIXES, NO_TIMESTAMP_FPS, VIDEO_SUFFIXES, Frame, Source,
                    media_error)
from .video import Sampling, decode_packet, display_turns, iter_video, open_video, probe_video, size_changes

__all__ = ["EXIF_ORIENTATION", "IMAGE_SUFFIXES", "MAX_WALK_DEPTH", "MEDIA", "MULTI_FRAME_SUFFIXES", "NO_TIMESTAMP_FPS",
           "OUTPUT_MARKER", "VIDEO_SUFFIXES", "AnimationFrame", "Discovery", "Frame", "Source", "animation_frames",
           "decode_packet", "discover", "display_turns", "exif_turn", "frames_kind", "has_alpha", "is_animation",
           "iter_frames", "mark_output_dir", "media_error", "media_kind", "not_a_regular_file", "not_media_reason",
           "open_video", "probe_video", "read_image", "size_changes", "supported_suffixes", "sniff_container", "to_rgb",
           "upright"]

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
    yield from iter_video(source, every, fps, max_pixels, bgr=bgr)


def _iter_animation(source: Source, every: int, sample_fps: float | None, max_pixels: int, *,
                    bgr: bool = False) -> Iterator[Frame]:
    """The frames of an animated image that ``every`` / ``sample_fps`` choose, as :func:`iter_video` chooses them."""
    wanted = Sampling(every, sample_fps)
    for index, t, _, pixels in animation_frames(source, max_pixels):
        if not wanted(index, t):
            continue
        rgb = pixels()
        yield Frame(index=index, time_s=t, rgb=None, bgr=np.ascontiguousarray(rgb[:, :, ::-1])) if bgr else \
            Frame(index=index, time_s=t, rgb=rgb)
