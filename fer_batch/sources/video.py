"""Decoding videos with OpenCV's FFmpeg backend: frames counted as they decode (header counts and rates are hints),
timestamps repaired where a container's are missing or go backwards, damaged stretches stepped over and named, and
frames chosen by ``every`` or ``fps`` (skipped frames are grabbed without colour conversion)."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError
from .images import is_animation
from .media import NO_TIMESTAMP_FPS, Frame, Source, check_readable

def _valid_fps(fps: float) -> bool:
    return math.isfinite(fps) and 0.5 <= fps <= 1000.0


def probe_video(source: Source) -> dict:
    """Header facts of a video (frame count, fps, size); hints only, used for progress bars."""
    import cv2

    if is_animation(source):
        from PIL import Image

        from ..threads import warnings_ignored

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


def open_video(path: Path):
    """A ``cv2.VideoCapture`` for decoding ``path``, with :func:`~fer_batch.threads.decoder_threads` FFmpeg threads.

    The thread count is an open parameter of the FFmpeg backend; other backends do not take it, so they open the
    file without it (OpenCV refuses parameters a backend does not know).
    """
    import cv2

    from ..threads import decoder_threads

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


def iter_video(source: Source, every: int, sample_fps: float | None, max_pixels: int, *,
                bgr: bool = False) -> Iterator[Frame]:
    """The frames of a video that ``every`` / ``sample_fps`` choose, decoded by OpenCV, or by PyAV where the frame
    size changes mid-stream (:func:`size_changes`)."""
    import cv2

    check_readable(source)
    if size_changes(source.path):
        yield from _iter_pyav(source, every, sample_fps, max_pixels, bgr=bgr)
        return
    cap = open_video(source.path)
    try:
        if not cap.isOpened():
            raise InputError(source.name, "cannot open as a video (unsupported or corrupt container)")
        header_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        header_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps_ok = _valid_fps(header_fps)
        clock = _VideoClock(header_fps if fps_ok else None)
        index = -1
        wanted = Sampling(every, sample_fps)
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
            _check_pixels(source, pixels.shape[1], pixels.shape[0], max_pixels)
            frame = Frame(index=index, time_s=t, rgb=None, bgr=pixels) if bgr else \
                Frame(index=index, time_s=t, rgb=cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
            pixels = None  # while suspended, hold no frame: the consumer decides how long it lives
            yield frame
            frame = None
        _check_end(source, index + 1, header_frames, header_fps if fps_ok else None, clock, gaps)
    finally:
        cap.release()


def _check_pixels(source: Source, width: int, height: int, max_pixels: int) -> None:
    """:class:`InputError` for frames above ``max_pixels`` (both decoding paths)."""
    if width * height > max_pixels:
        raise InputError(source.name, f"video frames are {width}x{height}, above the {max_pixels / 1e6:.0f}-megapixel "
                                      "limit")


def _check_end(source: Source, decoded: int, header_frames: int, fps: float | None, clock: _VideoClock,
               gaps: list[tuple[int, int]]) -> None:
    """Once a video is decoded: an error for a video without frames, one that stopped short of its header, or one
    with damaged stretches (the rows of the frames that did decode are kept)."""
    if decoded == 0:
        raise InputError(source.name, "no frame could be decoded (corrupt, truncated or not a video)")
    short = _short_of_header(decoded, header_frames, fps, clock.reached())
    if short is not None:
        raise InputError(source.name, f"video ended after {decoded} of the {header_frames} frames its header "
                                      f"announces (truncated or corrupt){short}; rows up to there were kept"
                                      f"{_gaps_text(gaps, '; earlier, ')}")
    if gaps:
        raise InputError(source.name, f"{_gaps_text(gaps)}; the frames around them were analysed and their rows "
                                      "kept")


def size_changes(path: Path) -> bool:
    """Whether the frame size of the video at ``path`` changes mid-stream (joined recordings, adaptive streams).

    OpenCV cannot follow such a change: after it, its FFmpeg backend keeps converting at the first size and returns
    either the last frame of that size again or the new frames' planes read with the old strides, and says so only
    on stderr. Sizes change at keyframes, so only those are decoded here (PyAV), at most one a second of video (in
    an intra-only codec, MJPEG or ProRes, every frame is one): 0.2 s for a 426 MB 720p H.264 file that OpenCV
    decodes in 9.3 s. Remembered per file (size and date), as the report's thumbnails ask again. False where PyAV
    cannot read the file, or has no decoder for it: OpenCV then decodes it, or reports it, as before.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    return _size_changes(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _size_changes(name: str, size: int, mtime_ns: int) -> bool:
    import av

    sizes = set()
    try:
        with av.open(name) as inp:
            if not inp.streams.video or inp.streams.video[0].codec_context is None:  # no decoder for it
                return False
            stream = inp.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            intra = bool(stream.codec_context.codec.properties & av.codec.codec.Properties.INTRA_ONLY.value)
            last = None
            for packet in inp.demux(stream):
                if packet.size and not packet.is_keyframe:
                    continue
                t = float(packet.pts * stream.time_base) if packet.pts is not None else None
                if intra and t is not None and last is not None and last < t < last + 1.0:
                    continue  # within a second of the last one looked at (a clock that restarts is looked at)
                last = t if t is not None else last
                for frame in decode_packet(packet) or ():
                    sizes.add((frame.width, frame.height))
                if len(sizes) > 1:
                    return True
    except (av.error.FFmpegError, OSError, UnicodeError):
        return False
    return False


def decode_packet(packet) -> list | None:
    """``packet``'s frames, or None where it fails to decode: a damaged frame, which the analysis on PyAV's path
    (:func:`_iter_pyav`), the annotated copy and the thumbnails all count as the one frame it held, so that they
    number the frames after it alike (whatever FFmpeg error the damage raises: invalid data, a missing reference)."""
    import av

    try:
        return packet.decode()
    except av.error.FFmpegError:
        return None


def display_turns(path: Path) -> int:
    """Quarter turns counter-clockwise that show ``path``'s frames upright (its display-rotation tag; 0 without one),
    as OpenCV applies them (``open_video`` sets CAP_PROP_ORIENTATION_AUTO)."""
    import av

    with av.open(str(path)) as inp:
        for packet in inp.demux(video=0):
            # A damaged first packet decodes to None: the tag is on the frames after it.
            for frame in decode_packet(packet) or ():
                return round((frame.rotation or 0) / 90) % 4
    return 0


def _iter_pyav(source: Source, every: int, sample_fps: float | None, max_pixels: int, *,
               bgr: bool) -> Iterator[Frame]:
    """:func:`iter_video` through PyAV, for a video whose frame size changes: each frame at its own size, upright,
    with the same numbering, sampling and damage reports as OpenCV's path (a packet that fails to decode counts as
    the frame it held, as in ``annotate_video``, so that copies and thumbnails find the same frames) and the same
    clock on the frames' timestamps (PyAV's pts; an AVI with B-frames, whose pts OpenCV reads otherwise, can get
    other times than it would there)."""
    import av
    import numpy as np

    from ..threads import decoder_threads

    try:
        turns = display_turns(source.path)
        inp = av.open(str(source.path))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(source.name, f"cannot open as a video ({exc})") from None
    with inp:
        stream = inp.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = decoder_threads()  # as OpenCV's path: frames in flight cost memory
        rate = float(stream.average_rate or stream.base_rate or 0.0)
        fps_ok = _valid_fps(rate)
        # OpenCV estimates a count the container does not store (MKV, TS) as duration x fps: so here.
        header_frames = stream.frames or (round(inp.duration / av.time_base * rate) if inp.duration and fps_ok else 0)
        clock = _VideoClock(rate if fps_ok else None)
        start = stream.start_time or 0
        wanted = Sampling(every, sample_fps)
        gaps: list[tuple[int, int]] = []
        index = -1
        for packet in inp.demux(stream):
            pictures = decode_packet(packet)
            if pictures is None:  # as a failed grab on OpenCV's path: a damaged frame
                index += 1
                if gaps and sum(gaps[-1]) == index:
                    gaps[-1] = (gaps[-1][0], gaps[-1][1] + 1)
                else:
                    gaps.append((index, 1))
                continue
            pictures.reverse()
            while pictures:  # popped, so that no frame is held while the consumer has the one yielded
                picture = pictures.pop()
                index += 1
                msec = None if picture.pts is None else float((picture.pts - start) * stream.time_base * 1000)
                t = clock.time(index, msec)
                if not wanted(index, t):
                    continue
                _check_pixels(source, picture.width, picture.height, max_pixels)
                pixels = picture.to_ndarray(format="bgr24" if bgr else "rgb24")
                pixels = np.ascontiguousarray(np.rot90(pixels, turns) if turns else pixels)  # rows may be padded
                frame = Frame(index=index, time_s=t, rgb=None, bgr=pixels) if bgr else \
                    Frame(index=index, time_s=t, rgb=pixels)
                pixels = picture = None
                yield frame
                frame = None
        while gaps and sum(gaps[-1]) == index + 1:  # damage at the very end is where the video ended
            index -= gaps.pop()[1]
        _check_end(source, index + 1, header_frames, rate if fps_ok else None, clock, gaps)


#: Consecutive frames that fail to decode after which a video is taken to have ended (where its header announces
#: more): failed grabs cost little (2,000 in under 0.4 s on the project's machine).
MAX_UNDECODABLE_RUN = 10_000


def _gaps_text(gaps: list[tuple[int, int]], lead: str = "") -> str:
    """"847 frames could not be decoded (422-1,268)": the damaged stretches of a video, for its error row."""
    from ..wording import count

    if not gaps:
        return ""
    spans = ", ".join(f"{first:,}-{first + n - 1:,}" if n > 1 else f"{first:,}" for first, n in gaps[:5])
    more = f" and {len(gaps) - 5} more stretches" if len(gaps) > 5 else ""
    return f"{lead}{count(sum(n for _, n in gaps), 'frame')} could not be decoded ({spans}{more})"


class Sampling:
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
