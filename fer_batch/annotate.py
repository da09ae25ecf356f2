"""Annotated copies of the inputs (``--annotate DIR``): each video re-encoded with its faces drawn, each photo
copied in its own format with its faces drawn.

A sink of committed sources: once a source's rows are in the timeline, :class:`AnnotateSink` reads them back one
frame at a time and decodes the source again, drawing each analysed frame's results on it (and on the skipped
frames that follow it, with ``--every``/``--fps``). Re-decoding, rather than carrying pixels through the pipeline,
keeps the pipeline's memory bound: the batcher holds up to ``max(batch, 4 x queue)`` frames while their crops wait
for a full network batch, which at 720p would be ~700 MB of pixels (6 GB at 4K), and the reader grabs skipped frames
without decoding them to pixels at all. Decoding is a small part of the annotation's cost (H.264 encoding is most
of it; see README, Performance), and a driver that only receives records (a cluster engine) annotates the same way.

Videos: H.264 (libx264 through PyAV) in yuv420p with ``+faststart``, every decoded frame with its own timestamp,
the input's size (an odd width or height is padded by one pixel: yuv420p needs even sizes); audio is copied
(without re-encoding) when MP4 can hold its codec. The file is written under a temporary name and renamed when
complete, so an interrupted run leaves no half-written annotated video under its real name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path, PurePath

from .errors import InputError, Interrupted
from .output_files import record, remove_earlier
from .records import FaceRecord
from .sources import (NO_TIMESTAMP_FPS, Source, animation_frames, decode_packet, display_turns, is_animation,
                      mark_output_dir, media_error)

log = logging.getLogger("fer_batch")

#: x264's speed preset and quality. Encoding is most of the annotation's cost: on the 2-core test machine (loaded)
#: a 720p frame encoded at 9 frames/s with "veryfast", 15 with "superfast", 28 with "ultrafast" (whose Constrained
#: Baseline stream is 1.5x the size again), beside 57 frames/s to decode it. "superfast" still gives a High-profile
#: stream (CABAC, B-frames) that any player reads; CRF 20 keeps the drawn text crisp.
ENCODER_PRESET = "superfast"
ENCODER_CRF = 20
#: Audio codecs an MP4 holds as they are; others are dropped (with a note) rather than re-encoded.
MP4_AUDIO = frozenset({"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"})


def annotated_name(source: str, media: str) -> PurePath:
    """Where a source's annotated copy goes below the annotate folder: its path as given, made relative and safe
    (other characters than ASCII letters, digits, ``.``, ``_`` and ``-`` become ``_``, ``..`` becomes ``__``); videos get
    ``.mp4`` appended unless they already end in it."""
    parts = []
    for part in PurePath(source).parts:
        if part in ("/", "\\", ".") or PurePath(part).anchor == part:
            continue
        part = "__" if part == ".." else re.sub(r"[^A-Za-z0-9._-]+", "_", part).lstrip(".") or "_"
        parts.append(part[-120:])
    path = PurePath(*parts) if parts else PurePath("source")
    if media == "video" and path.suffix.lower() != ".mp4":
        path = path.with_name(path.name + ".mp4")
    return path


def annotated_names(sources: Iterable[tuple[str, str]]) -> dict[str, PurePath]:
    """{source name: where its copy goes below the annotate folder} for a run's (name, media) sources.

    Names that clean up alike (``a b.jpg`` and ``a_b.jpg``) all get a short digest of their own name, so that
    which copy is whose does not depend on the order the sources are met in (a resumed run meets them in another).
    """
    groups: dict[PurePath, list[str]] = {}
    for source, media in sources:
        groups.setdefault(annotated_name(source, media), []).append(source)
    out = {}
    for rel, names in groups.items():
        for source in names:
            out[source] = rel if len(set(names)) == 1 else _with_digest(rel, source)
    return out


def _with_digest(rel: PurePath, source: str) -> PurePath:
    digest = hashlib.sha1(source.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return rel.with_name(f"{rel.stem}-{digest}{rel.suffix}")


def check_not_over_inputs(directory: Path, sources) -> None:
    """Refuse (:class:`~fer_batch.errors.UsageError`) an annotate folder where a copy would replace an input.

    ``sources``: the run's :class:`~fer_batch.sources.Source` list. ``--annotate .`` over relative inputs, for
    one, would name each copy exactly as its source and overwrite the original photo or video.
    """
    from .errors import UsageError

    inputs = {os.path.realpath(s.path): s.name for s in sources}
    for source, rel in annotated_names((s.name, s.media) for s in sources).items():
        hit = inputs.get(os.path.realpath(Path(directory) / rel))
        if hit is not None:
            raise UsageError(f"--annotate {str(directory)!r} would write an annotated copy over the input {hit!r}; "
                             "choose a folder that is not where the inputs are")


def sampling_note(every: int, fps: float | None) -> str | None:
    """The legend of a video analysed on a subset of its frames (None when every frame was analysed)."""
    how = sampling_text(every, fps)
    if how == "every frame":
        return None
    return f"{how} analysed; the last result stays drawn on the frames between"


def sampling_text(every: int, fps: float | None) -> str:
    """Which frames were analysed, in words: "every frame", "every 5th frame", "about 2 frames a second"."""
    if fps is not None:
        return f"about {fps:g} frames a second"
    if every == 1:
        return "every frame"
    suffix = "th" if 10 <= every % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(every % 10, "th")
    return f"every {every}{suffix} frame"


def _by_frame(records: Iterable[FaceRecord]) -> Iterator[tuple[int, list[FaceRecord]]]:
    """(frame, its records) in frame order, holding one frame's records at a time."""
    frame, group = None, []
    for rec in records:
        if rec.frame != frame and group:
            yield frame, group
            group = []
        frame = rec.frame
        group.append(rec)
    if group:
        yield frame, group


def annotate_video(src: Path, dst: Path, records: Iterable[FaceRecord], *, note: str | None = None,
                   stop=None) -> dict:
    """Re-encode ``src`` to ``dst`` (MP4, H.264) with ``records`` drawn; returns facts (frames, audio, size).

    Setting ``stop`` (a :class:`threading.Event`) abandons the file at its next frame with :class:`Interrupted`
    (a long video must not hold up Ctrl-C); its temporary part is left for the caller to remove."""
    import av
    import numpy as np

    if is_animation(Source(Path(src), str(src), "video")):
        return _annotate_animation(Path(src), dst, records, note=note, stop=stop)
    drawn = _Drawing(records, note)
    tmp = dst.with_name(f".{dst.name}.part")
    facts = {"frames": 0, "audio": "none"}
    turns = display_turns(src)
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        rate = vin.average_rate or vin.guessed_rate or Fraction(30)
        with av.open(str(tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"}) as out:
            tb = vin.time_base or Fraction(1, 90000)
            # Sized before the first packet (an audio one may come first and open the file).
            w, h = vin.codec_context.width, vin.codec_context.height
            if turns % 2:  # drawn and written upright, as the analysis saw it: the copy needs no rotation tag
                w, h = h, w
            vout, size = _h264_stream(out, rate, tb, (w, h))
            # Non-square pixels (DVB, DVD and HDV recordings): the copy is shown at the source's shape, not squeezed.
            sar = vin.codec_context.sample_aspect_ratio
            if sar and sar > 0 and sar != 1:
                vout.codec_context.sample_aspect_ratio = 1 / sar if turns % 2 else sar
            facts["size"] = (w, h)
            ain = aout = None
            if inp.streams.audio:
                a = inp.streams.audio[0]
                name = a.codec_context.name
                if name in MP4_AUDIO:
                    ain, aout = a, out.add_stream_from_template(a)
                    facts["audio"] = f"copied ({name})"
                else:
                    # MP4 could hold some of them (MP2), but players do not commonly play them from one.
                    facts["audio"] = f"not copied ({name}: not among the codecs MP4 players commonly play; not " \
                                     "re-encoded)"
            streams = [vin] + ([ain] if ain is not None else [])
            index = -1
            last_pts, step = None, max(1, round(1 / (rate * tb)))
            # The copy's clock starts at 0, as the timeline's does (a live stream's segment starts hours in: its
            # copy began with as long an empty edit).
            start = vin.start_time or 0
            joins = _Joins(start * tb)
            audio = _AudioTimes(joins, ain.time_base) if ain is not None else None
            for packet in inp.demux(streams):
                if packet.stream is ain:
                    if audio.rebase(packet):
                        packet.stream = aout
                        out.mux(packet)
                    continue
                frames = decode_packet(packet)
                if frames is None:
                    # A damaged stretch: the analysis stepped over it a frame at a time, counting the frames lost;
                    # the copy goes on after it, a packet counted as the frame it held, so that its frames keep
                    # their numbers and their rows.
                    index += 1
                    continue
                for frame in frames:
                    if stop is not None and stop.is_set():
                        raise Interrupted(f"stopped while annotating {src}; continue with --resume")
                    index += 1
                    img = frame.to_ndarray(format="bgr24")
                    if turns:
                        img = np.ascontiguousarray(np.rot90(img, turns))
                    img = drawn(img, index, size)
                    new = av.VideoFrame.from_ndarray(img, format="bgr24")
                    # Frames come in display order, but their pts need not (H.264 with B-frames in an AVI): the
                    # encoder refuses a pts that does not grow, so such a frame follows the last one by a frame
                    # interval.
                    if frame.pts is None:
                        pts = int(index / rate / tb)
                    else:
                        pts = max(round(joins.place("video", frame.pts * tb, 1 / Fraction(rate)) / tb), 0)
                    if last_pts is not None and pts <= last_pts:
                        pts = last_pts + step
                    new.pts, new.time_base, last_pts = pts, tb, pts
                    for p in vout.encode(new):
                        out.mux(p)
                    facts["frames"] = index + 1
            for p in vout.encode(None):
                out.mux(p)
    os.replace(tmp, dst)
    return facts


class _Joins:
    """The copy's clock, from the video's start (``start_s``, seconds), for the audio and the video alike. Where the
    source's clock restarts (recordings joined end to end, ``cat a.ts b.ts``), the later part is moved to follow on
    from the copy so far, its audio and its video by one offset, so that they stay in step as they were in that part
    (the MP4 muxer had refused the restarted audio: "non monotonically increasing dts"). A jump back of more than
    :attr:`RESTART_S` is a restart; a smaller one (frames stored out of order) is left to each stream's own repair."""

    RESTART_S = Fraction(1, 2)

    def __init__(self, start_s: Fraction):
        self.start = start_s
        self.offsets = [Fraction(0)]  # seconds added to each part's times
        self.end = Fraction(0)  # where the copy so far ends
        self.part: dict[str, int] = {}  # each stream's current part
        self.last: dict[str, Fraction] = {}  # each stream's last time on the copy's clock

    def place(self, stream: str, t: Fraction, duration: Fraction) -> Fraction:
        """``t`` (seconds, on the source's clock) on the copy's."""
        part = self.part.get(stream, 0)
        placed = t - self.start + self.offsets[part]
        last = self.last.get(stream)
        if last is not None and placed < last - self.RESTART_S:
            part = self.part[stream] = part + 1
            if part == len(self.offsets):  # the first stream to reach this part says where it goes
                self.offsets.append(self.end - (t - self.start))
            placed = t - self.start + self.offsets[part]
        self.last[stream] = placed
        self.end = max(self.end, placed + duration)
        return placed


class _AudioTimes:
    """Timestamps of the copied audio packets on the copy's clock (:class:`_Joins`), never going back (a packet that
    would is placed right after the one before). A packet before the video's first frame keeps its place before 0,
    as an AAC encoder's priming packet has it."""

    def __init__(self, joins: _Joins, time_base: Fraction):
        self.joins, self.time_base = joins, time_base
        self.last: int | None = None  # the dts of the last packet copied
        self.end = 0  # where it ends

    def rebase(self, packet) -> bool:
        """Set ``packet``'s pts and dts on the copy's clock; False for a packet to leave out."""
        if packet.dts is None:
            return False
        tb = self.time_base
        dts = round(self.joins.place("audio", packet.dts * tb, (packet.duration or 0) * tb) / tb)
        if self.last is not None and dts <= self.last:
            dts = self.end
        pts = dts if packet.pts is None else packet.pts + (dts - packet.dts)
        packet.dts, packet.pts = dts, pts
        self.last, self.end = dts, dts + max(packet.duration or 0, 1)
        return True


def _annotate_animation(src: Path, dst: Path, records: Iterable[FaceRecord], *, note: str | None, stop) -> dict:
    """:func:`annotate_video` for an animated image (GIF, PNG, WebP, a TIFF's pages): its frames as the analysis
    decoded them (PIL), each shown from its own time for its own duration (pages without times 1/30 s apart), into
    an MP4. A frame that cannot be decoded ends the copy there, as it ended the analysis."""
    import av
    import numpy as np

    drawn = _Drawing(records, note)
    tmp = dst.with_name(f".{dst.name}.part")
    facts = {"frames": 0, "audio": "none"}
    tb = Fraction(1, 1000)  # the durations of GIF and WebP frames are whole milliseconds
    with av.open(str(tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"}) as out:
        vout = None
        last_pts, end = -1, None
        frames = animation_frames(Source(src, str(src), "video"))
        while True:
            try:
                index, t, lasts, pixels = next(frames)
                img = np.ascontiguousarray(pixels()[:, :, ::-1])
            except StopIteration:
                break
            except InputError:
                if vout is None:
                    raise
                break  # the analysis stopped at the same frame: the copy holds the frames it analysed
            if stop is not None and stop.is_set():
                raise Interrupted(f"stopped while annotating {src}; continue with --resume")
            if vout is None:  # sized by the first frame (a TIFF's later pages may differ: fitted to it)
                facts["size"] = (img.shape[1], img.shape[0])
                vout, size = _h264_stream(out, int(NO_TIMESTAMP_FPS), tb, facts["size"])
            img = drawn(img, index, size)
            new = av.VideoFrame.from_ndarray(img, format="bgr24")
            # A frame of no duration still needs a time of its own in the MP4.
            new.pts = last_pts = max(round((t if t is not None else index / NO_TIMESTAMP_FPS) * 1000), last_pts + 1)
            new.time_base = tb
            for p in vout.encode(new):
                out.mux(p)
            facts["frames"] = index + 1
            end = (new.pts + round(lasts * 1000), img) if lasts else None
        if vout is None:
            raise InputError(str(src), "no frame could be decoded")
        if end is not None and end[0] > last_pts:
            # MP4 keeps no duration for its last frame (players show it for one frame interval): the last frame again
            # at the animation's end holds it as long as the animation does (a GIF's last frame is often its longest).
            held = av.VideoFrame.from_ndarray(end[1], format="bgr24")
            held.pts, held.time_base = end[0], tb
            for p in vout.encode(held):
                out.mux(p)
        for p in vout.encode(None):
            out.mux(p)
    os.replace(tmp, dst)
    return facts


class _Drawing:
    """Draws each frame's faces (the last result held over frames that were not analysed) and the legend's note,
    and fits the frame to the copy's size."""

    def __init__(self, records: Iterable[FaceRecord], note: str | None):
        from .overlay import bgr_colours, draw_faces, draw_legend

        self.colours, self.note = bgr_colours(), note
        self.draw_faces, self.draw_legend = draw_faces, draw_legend  # imported once, not once a frame
        self.groups = _by_frame(records)
        self.upcoming = next(self.groups, None)
        self.current: list[FaceRecord] = []
        self.corner: str | None = None  # the legend's, kept while it covers no face

    def __call__(self, img, index: int, size: tuple[int, int]):
        while self.upcoming is not None and self.upcoming[0] <= index:
            self.current = self.upcoming[1]
            self.upcoming = next(self.groups, None)
        placed = self.draw_faces(img, self.current, self.colours)
        if self.note:
            avoid = [(r.x, r.y, r.x + r.w, r.y + r.h) for r in self.current if r.has_face]
            avoid += [panel for _, _, panel in placed]
            self.corner = self.draw_legend(img, self.note, avoid, self.corner, labels=[label for _, label, _ in placed])
        return _fit(img, size) if (img.shape[1], img.shape[0]) != size else img


def _h264_stream(out, rate, time_base: Fraction, frame_size: tuple[int, int]):
    """The copy's H.264 stream and its size: ``frame_size`` made even, as yuv420p needs."""
    w, h = frame_size
    size = (w + w % 2, h + h % 2)
    vout = out.add_stream("libx264", rate=rate)
    vout.pix_fmt = "yuv420p"
    # No B-frames: with them x264 spaces the decoding times of the last frames evenly, and the MP4's durations, taken
    # from those, lost a long gap before a last frame (a GIF of 2.6 s whose last frame is held 1.5 s read as 1.23 s
    # long; a 1-s clip whose last frame came at 3 s, as 1.02 s).
    vout.options = {"preset": ENCODER_PRESET, "crf": str(ENCODER_CRF), "bf": "0"}
    vout.codec_context.time_base = time_base
    vout.width, vout.height = size
    return vout, size


def _fit(img, size: tuple[int, int]):
    """The frame at the output's size: an odd side padded by one repeated pixel; a frame whose size changed
    mid-stream (the header's size is the output's), or a TIFF page of another shape than the first, scaled to fit
    inside it, its shape kept, on black (stretched, a portrait page among landscape ones squashed its faces)."""
    import cv2

    w, h = size
    ih, iw = img.shape[:2]
    if 0 <= w - iw <= 1 and 0 <= h - ih <= 1:
        return cv2.copyMakeBorder(img, 0, h - ih, 0, w - iw, cv2.BORDER_REPLICATE)
    scale = min(w / iw, h / ih)
    nw, nh = min(w, max(1, round(iw * scale))), min(h, max(1, round(ih * scale)))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (h - nh) // 2, (w - nw) // 2
    return cv2.copyMakeBorder(small, top, h - nh - top, left, w - nw - left, cv2.BORDER_CONSTANT, value=(0, 0, 0))


#: The transpose that undoes a turn: the flips, the half turn and the two diagonal mirrors undo themselves.
_UNDO_TURN = {"ROTATE_90": "ROTATE_270", "ROTATE_270": "ROTATE_90"}
#: The tags of a TIFF's directory that its annotated copy keeps: what describes the picture (document and page
#: names, description, camera, resolution, software, date, artist, XMP, copyright, the EXIF and GPS directories).
#: The others say how the source's pixels are stored (size, bits and samples per pixel, colour map, strips): written
#: over the RGB copy's own, they made the copy of a grey, palette, RGBA or CMYK TIFF a file no reader opens.
_TIFF_KEPT_TAGS = frozenset({269, 270, 271, 272, 274, 282, 283, 285, 296, 305, 306, 315, 316, 700, 33432, 34665,
                             34853})


#: Photo formats whose copies keep the source's transparency (the rest are written without it, as RGB).
_ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})


def _webp_is_lossless(path: Path) -> bool:
    """Whether a WebP file holds lossless (VP8L) pixels: its first image chunk, past VP8X, ICCP, ANIM, ALPH..."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            return False
        while len(chunk := f.read(8)) == 8:
            tag, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if tag in (b"VP8L", b"VP8 ", b"ANMF"):
                return tag == b"VP8L"
            f.seek(size + size % 2, os.SEEK_CUR)
    return False


def annotate_photo(src: Path, dst: Path, records: Iterable[FaceRecord]) -> dict:
    """Copy ``src`` to ``dst`` in its own format with ``records`` drawn. The faces are drawn upright (boxes are in
    the EXIF-rotated frame), then the pixels are turned back, so the copy has the source's stored size and EXIF
    orientation and shows the same way in every viewer; a TIFF's copy is stored upright, without the tag (Pillow
    turns a TIFF as it decodes it)."""
    import numpy as np
    from PIL import Image

    from .overlay import draw_faces
    from .sources import has_alpha, to_rgb, upright
    from .threads import warnings_ignored

    with warnings_ignored():  # PIL's complaints about odd EXIF, as when the analysis read the photo
        im = Image.open(src)
        im.getexif()
    with im:
        fmt = im.format
        # A profile describes the source's own colour space: a grey or CMYK one would be wrong on the RGB copy.
        icc = im.info.get("icc_profile") if im.mode in ("RGB", "RGBA", "P", "PA") else None
        # Turned as the analysis turned it, so the boxes land where the faces were found. A TIFF comes out of its
        # decoding upright and without its orientation tag: its copy is stored upright, with no tag to turn it.
        turned, turn = upright(im)
        exif = im.getexif()
        # Transparency kept where the format holds it: the analysis saw the photo on white, the copy stays
        # see-through, its colours as stored (not blended with that white).
        if has_alpha(turned) and fmt in _ALPHA_FORMATS:
            rgba = np.asarray(turned.convert("RGBA"))
            rgb, alpha = rgba[:, :, :3], rgba[:, :, 3].copy()
        else:
            rgb, alpha = to_rgb(turned), None
    if fmt == "TIFF":
        for tag in [tag for tag in exif if tag not in _TIFF_KEPT_TAGS]:
            del exif[tag]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    records = list(records)
    before = bgr.copy() if alpha is not None else None
    draw_faces(bgr, records)
    if alpha is not None:
        # What is drawn shows, on transparent pixels too. Drawn again on the negative, to find every pixel the
        # drawing touched: a shaded panel leaves a black (transparent) pixel black, the negative's white one not.
        negative = 255 - before
        draw_faces(negative, records)
        alpha[(bgr != before).any(axis=2) | (negative != 255 - before).any(axis=2)] = 255
        out = Image.fromarray(np.dstack([bgr[:, :, ::-1], alpha]), "RGBA")
    else:
        out = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    if turn is not None:
        out = out.transpose(getattr(Image.Transpose, _UNDO_TURN.get(turn, turn)))
    options = {}
    if len(exif):
        try:
            options["exif"] = exif.tobytes()
        except (ValueError, TypeError, struct.error):  # a value PIL read but cannot write back: the copy goes without
            pass
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options.update(quality=92)
    elif fmt == "WEBP":  # Pillow's default is lossy at quality 80, also for a lossless source
        options.update({"lossless": True} if _webp_is_lossless(src) else {"quality": 92})
    tmp = dst.with_name(f".{dst.name}.part")
    out.save(tmp, format=fmt, **options)
    os.replace(tmp, dst)
    return {"size": out.size}


def _failure(exc: Exception, dst: Path) -> str:
    """Why an annotated copy was not written, as its user can act on it: an OSError's words (FFmpeg's included) and
    the file they are about (the copy, not the temporary file beside it that the copy is written to first), not the
    errno. FFmpeg's words about data without a file (a packet of the source that does not decode) name none: the
    copy's path had blamed the copy for the source."""
    words = getattr(exc, "strerror", None)  # OSError's and PyAV's FFmpegError's (which is no OSError)
    if not words:
        return f"{type(exc).__name__}: {exc}"
    name = getattr(exc, "filename", None)
    if name is None and not isinstance(exc, OSError):
        return f"{type(exc).__name__}: {words}"
    shown = str(dst) if name is None or str(name).endswith(".part") else str(name)
    return f"{type(exc).__name__}: {words}: {shown!r}"


class AnnotateSink:
    """Writes the annotated copy of each committed source below ``directory``.

    ``source_done(source, media, path, rows)`` is called after a source's rows are committed, with the source's
    file and its rows in frame order (e.g. :meth:`RunWriter.rows`); a failure to annotate one file is recorded in
    ``failures`` and does not stop the run, audio an annotated copy left out in ``audio_notes``.
    """

    def __init__(self, directory: Path, *, every: int = 1, fps: float | None = None, stop=None,
                 sources: Iterable[tuple[str, str]] = (), timeline: Path | None = None):
        self.directory = Path(directory)
        self.timeline = timeline  # the timeline whose copies these are (output_files), if any
        self.stop = stop
        self.note = sampling_note(every, fps)
        self.written: list[Path] = []
        self.failures: list[tuple[str, str]] = []
        self.audio_notes: list[tuple[str, str]] = []
        self._marked = False
        self._names = annotated_names(sources)
        self._used: dict[PurePath, str] = {rel: source for source, rel in self._names.items()}

    def path_for(self, source: str, media: str) -> Path:
        rel = self._names.get(source)
        if rel is None:  # a source the sink was not told about up front
            rel = annotated_name(source, media)
            if self._used.setdefault(rel, source) != source:  # two names that clean up alike: keep both apart
                rel = _with_digest(rel, source)
                self._used[rel] = source
            self._names[source] = rel
        return self.directory / rel

    def exists(self, source: str, media: str) -> bool:
        return self.path_for(source, media).exists()

    def source_done(self, source: str, media: str, path: Path, rows: Iterable[FaceRecord]) -> Path | None:
        dst = self.path_for(source, media)
        try:
            if not self._marked:  # so that no later walk of an input tree holding it analyses the copies
                mark_output_dir(self.directory)
                self._marked = True
            dst.parent.mkdir(parents=True, exist_ok=True)
            if media == "video":
                facts = annotate_video(Path(path), dst, rows, note=self.note, stop=self.stop)
                if not facts["audio"].startswith(("copied", "none")):
                    self.audio_notes.append((source, facts["audio"]))
            elif media == "image":
                annotate_photo(Path(path), dst, rows)
            else:
                raise media_error("media", media)
        except Interrupted:
            dst.with_name(f".{dst.name}.part").unlink(missing_ok=True)  # --resume draws it again
            raise
        except Exception as exc:  # one file that cannot be annotated must not stop the batch
            log.debug("annotating %s failed", source, exc_info=True)
            self.failures.append((source, _failure(exc, dst)))
            dst.with_name(f".{dst.name}.part").unlink(missing_ok=True)
            return None
        self.written.append(dst)
        if self.timeline is not None:
            try:
                record(self.directory, self.timeline, "annotate", [dst])
            except OSError as exc:  # the copy is made; only a later run's clean-up would miss it
                log.info("could not record %s in %s: %s", dst, self.directory, exc)
        return dst

    def remove_earlier(self) -> list[Path]:
        """Delete the copies that an earlier run of this sink's timeline wrote (a run starting it again: this one
        draws its own); returns them."""
        return remove_earlier(self.directory, self.timeline, "annotate") if self.timeline is not None else []
