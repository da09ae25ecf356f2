"""Annotated copies (--annotate DIR) of generated media, checked frame by frame against the inputs."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fer_batch.annotate import annotated_name, sampling_note
from fer_batch.batch import run_batch
from fer_batch.config import AnalyzeConfig, RunConfig
from fer_batch.errors import UsageError
from fer_batch.summary import read_timeline

av = pytest.importorskip("av", reason="--annotate writes through PyAV (pip install av)")


@pytest.fixture(scope="module")
def classifier():
    from fer_batch.classify import Classifier

    return Classifier()


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]


def _pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def _drawn_region(shape, box, margin_x: int, margin_y: int) -> np.ndarray:
    """Where the box, its label and its bar panel may be drawn: the box grown by generous margins."""
    mask = np.zeros(shape[:2], bool)
    x, y, w, h = box
    mask[max(y - margin_y, 0):y + h + margin_y, max(x - margin_x, 0):x + w + margin_x] = True
    return mask


def _run(tmp_path, media: list[Path], classifier, **analyze) -> tuple[RunConfig, object]:
    inputs = tmp_path / "in"
    inputs.mkdir(exist_ok=True)
    for m in media:
        shutil.copy(m, inputs / Path(m).name)
    config = RunConfig(paths=(str(inputs),), out=tmp_path / "r.csv", annotate=tmp_path / "ann", overwrite=True,
                       analyze=AnalyzeConfig(**analyze))
    return config, run_batch(config, classifier=classifier)


def test_annotated_video_has_the_inputs_frames_and_draws_only_at_faces(tmp_path, face_video, classifier):
    config, report = _run(tmp_path, [face_video.path], classifier)
    assert report.ok and not report.annotate_failures
    name = str(tmp_path / "in" / Path(face_video.path).name)
    dst = config.annotate / annotated_name(name, "video")
    assert dst.exists() and dst.suffix == ".mp4"
    with av.open(str(dst)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
    src_frames, out_frames = _frames(face_video.path), _frames(dst)
    assert len(out_frames) == len(src_frames) == face_video.frames
    assert out_frames[0].shape == src_frames[0].shape == (face_video.size[1], face_video.size[0], 3)
    with av.open(str(face_video.path)) as c:
        src_tb = c.streams.video[0].time_base
    with av.open(str(dst)) as c:
        dst_tb = c.streams.video[0].time_base
    assert [p * src_tb for p in _pts(face_video.path)] == [p * dst_tb for p in _pts(dst)]  # same timing
    timeline = read_timeline(config.out)
    faces = timeline.dropna(subset=["face_id"])
    with_face = set(faces["frame"])
    without = [i for i in range(face_video.frames) if i not in with_face]
    assert with_face and without  # the face enters and leaves
    for i in without:  # nothing drawn: only the re-encoding's noise
        assert np.abs(out_frames[i] - src_frames[i]).mean() < 3.0, i
    for i in sorted(with_face):
        diff = np.abs(out_frames[i] - src_frames[i]).max(axis=2)
        mask = np.zeros(diff.shape, bool)
        for r in faces[faces["frame"] == i].itertuples():
            box = (int(r.x), int(r.y), int(r.w), int(r.h))
            x, y, w, h = box
            ring = np.zeros(diff.shape, bool)  # the box outline: drawn in the emotion's colour
            ring[max(y - 2, 0):y + 3, max(x, 0):x + w] = True
            assert diff[ring].mean() > 25, i
            mask |= _drawn_region(diff.shape, box, margin_x=130, margin_y=45)
        if (~mask).sum() > 1000:
            assert diff[~mask].mean() < 5.0, i  # re-encoding noise (max over channels)


def test_every_5_keeps_the_last_result_drawn_on_skipped_frames(tmp_path, face_video, classifier):
    config, report = _run(tmp_path, [face_video.path], classifier, every=5)
    assert report.ok
    dst = config.annotate / annotated_name(str(tmp_path / "in" / Path(face_video.path).name), "video")
    src_frames, out_frames = _frames(face_video.path), _frames(dst)
    assert len(out_frames) == face_video.frames
    faces = read_timeline(config.out).dropna(subset=["face_id"])
    held = 0
    for r in faces.itertuples():
        for i in range(int(r.frame) + 1, min(int(r.frame) + 5, face_video.frames)):  # skipped, result held
            x, y, w = int(r.x), int(r.y), int(r.w)
            diff = np.abs(out_frames[i] - src_frames[i]).max(axis=2)
            band = diff[max(y - 2, 0):y + 3, max(x, 0):x + w]  # the held box's top edge
            assert band.mean() > 25, (r.frame, i)
            held += 1
    assert held
    # The legend says why: its band in a corner (the bottom-left one unless a face is there) changes every frame.
    for i in range(face_video.frames):
        diff = np.abs(out_frames[i] - src_frames[i])
        corners = (diff[-12:, :60], diff[:12, :60], diff[-12:, -60:], diff[:12, -60:])
        assert max(c.mean() for c in corners) > 20, i
    assert "last result stays drawn" in sampling_note(5, None)


def test_the_sampling_legend_leaves_a_corner_with_a_face_and_stays_where_it_went():
    """The --every/--fps legend sat in the bottom-left corner whatever was there, over the chin of a face low in the
    frame: it now takes the first corner clear of faces, labels and panels, and keeps it while it stays clear."""
    from fer_batch.annotate import _Drawing
    from fer_batch.records import FaceRecord

    def frame_with(x, y):
        face = FaceRecord("v.mp4", "video", 0, 0.0, 0, x, y, 90, 90, 0.9, (0.05, 0.0, 0.0, 0.85, 0.05, 0.0, 0.05))
        drawing = _Drawing([face], sampling_note(5, None))
        img = np.full((360, 640, 3), 90, np.uint8)
        drawing(img, 0, (640, 360))
        return drawing, img

    drawing, img = frame_with(300, 120)  # mid-frame: the legend keeps its corner
    assert drawing.corner == "bottom-left" and (img[-10:, :40] != 90).any()
    drawing, img = frame_with(20, 260)  # low on the left: the legend goes up
    assert drawing.corner == "top-left"
    assert (img[:10, :40] != 90).any() and (img[-10:, 200:420] == 90).all()  # no band along the bottom
    moved = FaceRecord("v.mp4", "video", 1, 0.1, 0, 300, 120, 90, 90, 0.9, (0.05, 0.0, 0.0, 0.85, 0.05, 0.0, 0.05))
    drawing.upcoming = (1, [moved])
    drawing(np.full((360, 640, 3), 90, np.uint8), 1, (640, 360))
    assert drawing.corner == "top-left"  # the face left the corner: the legend does not jump back


def test_annotated_photos_keep_format_size_and_exif_orientation(tmp_path, multi_face_photo, exif_rotated_photo,
                                                                no_face_photo, classifier):
    from PIL import Image, ImageOps

    config, report = _run(tmp_path, [multi_face_photo, exif_rotated_photo, no_face_photo], classifier, workers=2)
    assert report.ok and not report.annotate_failures
    for src in (multi_face_photo, exif_rotated_photo, no_face_photo):
        dst = config.annotate / annotated_name(str(tmp_path / "in" / Path(src).name), "image")
        with Image.open(src) as a, Image.open(dst) as b:
            assert b.format == a.format and b.size == a.size
            assert b.getexif().get(0x0112) == a.getexif().get(0x0112)
            up_a = np.asarray(ImageOps.exif_transpose(a).convert("RGB"), np.int16)
            up_b = np.asarray(ImageOps.exif_transpose(b).convert("RGB"), np.int16)
        diff = np.abs(up_a - up_b).max(axis=2)
        rows = read_timeline(config.out)
        rows = rows[(rows["source"] == str(tmp_path / "in" / Path(src).name))].dropna(subset=["face_id"])
        if rows.empty:
            assert diff.mean() < 3.0  # no face: an unchanged copy (JPEG re-saved)
        for r in rows.itertuples():  # the box sits where the analysis found the face, on the upright picture
            assert diff[int(r.y):int(r.y) + 3, int(r.x):int(r.x) + int(r.w)].mean() > 25
    assert len(list(config.annotate.rglob("*.jpg"))) == 3


def test_an_animation_cut_short_is_annotated_up_to_where_its_analysis_stopped(tmp_path):
    """The analysis keeps the rows of the frames before the damage: the annotated copy holds those frames too (it
    had failed whole), and a long last frame is held for its own duration."""
    import av

    import synthetic_media as synthetic
    from fer_batch.annotate import annotate_video
    from fer_batch.errors import InputError
    from fer_batch.sources import Source, iter_frames

    frames = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(4)]
    whole = synthetic.save_animation(tmp_path / "whole.gif", frames, [100, 100, 100, 1000])
    facts = annotate_video(whole, tmp_path / "whole.mp4", [])
    with av.open(str(tmp_path / "whole.mp4")) as container:
        # As long as the animation, for the tools that read the MP4's durations (with B-frames, 1.3 s read as 0.43 s)
        assert 1.3 <= container.duration / av.time_base <= 1.35
        assert [f.time for f in container.decode(video=0)] == pytest.approx([0.0, 0.1, 0.2, 0.3, 1.3])
    assert facts["frames"] == 4
    data = whole.read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[:int(len(data) * 0.6)])
    analysed = []
    with pytest.raises(InputError, match="could not be decoded"):
        for frame in iter_frames(Source(tmp_path / "cut.gif", "cut.gif", "video")):
            analysed.append(frame.index)
    facts = annotate_video(tmp_path / "cut.gif", tmp_path / "cut.mp4", [])
    assert facts["frames"] == len(analysed) >= 1
    with av.open(str(tmp_path / "cut.mp4")) as container:
        assert len(list(container.decode(video=0))) == len(analysed) + 1  # the last one held for its 100 ms


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_photo_without_faces_comes_back_pixel_for_pixel_under_every_exif_orientation(tmp_path, orientation):
    """The copy is drawn upright and turned back: each of the eight orientations must undo its own turn exactly (a
    lossless PNG, no face drawn, so every pixel and the stored size come back)."""
    from PIL import Image

    from fer_batch.annotate import annotate_photo

    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "a.png", exif=exif.tobytes())
    annotate_photo(tmp_path / "a.png", tmp_path / "b.png", [])
    with Image.open(tmp_path / "b.png") as b:
        assert b.getexif().get(0x0112) == orientation
        np.testing.assert_array_equal(np.asarray(b.convert("RGB")), pixels)


@pytest.mark.parametrize("mode", ["I;16", "L", "P", "RGBA", "CMYK", "RGB"])
def test_a_tiffs_copy_opens_with_the_pixels_analysed_and_keeps_its_descriptive_tags(tmp_path, mode):
    """The copy is RGB (RGBA for an RGBA source): the source's layout tags (bits and samples per pixel, colour map)
    had been written over the copy's, and no reader opened the copy of a grey, palette, RGBA or CMYK TIFF."""
    from PIL import Image

    from fer_batch.annotate import annotate_photo
    from fer_batch.sources import Source, read_image

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    made = {"I;16": lambda: Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257),
            "RGBA": lambda: Image.fromarray(np.dstack([rgb, rgb[:, :, :1]]))}
    source = made[mode]() if mode in made else Image.fromarray(rgb).convert(mode)
    assert source.mode == mode
    source.save(tmp_path / "a.tif", tiffinfo={271: "Acme", 315: "A. Photographer"})
    annotate_photo(tmp_path / "a.tif", tmp_path / "b.tif", [])
    with Image.open(tmp_path / "b.tif") as b:
        assert b.mode == ("RGBA" if mode == "RGBA" else "RGB")
        assert b.getexif().get(271) == "Acme" and b.getexif().get(315) == "A. Photographer"
        copy = np.asarray(b)
    if mode == "RGBA":  # transparency kept, colours as stored
        np.testing.assert_array_equal(copy, np.asarray(source))
    else:
        np.testing.assert_array_equal(copy, read_image(Source(tmp_path / "a.tif", "a.tif", "image")))


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_a_turned_tiff_is_copied_upright_where_its_faces_were_found(tmp_path, orientation):
    """Pillow turns a TIFF while decoding it and drops its orientation tag: the copy is stored upright, untagged, and
    shows as the analysis saw the photo (it had been turned twice, the boxes drawn on a picture upside down)."""
    from PIL import Image

    from fer_batch.annotate import annotate_photo
    from fer_batch.sources import Source, read_image

    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.tif", tiffinfo={0x0112: orientation})
    annotate_photo(tmp_path / "a.tif", tmp_path / "b.tif", [])
    with Image.open(tmp_path / "b.tif") as b:
        assert b.getexif().get(0x0112) is None
        copy = np.asarray(b.convert("RGB"))
    analysed = read_image(Source(tmp_path / "a.tif", "a.tif", "image"))
    np.testing.assert_array_equal(copy, analysed)
    assert analysed.shape == ((5, 7, 3) if orientation < 5 else (7, 5, 3))


@pytest.mark.parametrize("entry", [
    b"\x01\x12\x00\x02\x00\x00\x00\x04" + b"6\x00\x00\x00",  # the orientation as 4 ASCII bytes, "6"
    b"\x01\x12\x00\x03\x00\x00\x00\x02" + b"\x00\x06\x00\x08",  # as two SHORTs, (6, 8)
])
def test_a_malformed_exif_orientation_is_annotated_as_it_was_analysed(tmp_path, one_face_photo, classifier, entry):
    """An orientation stored as text or as two numbers turns nothing in the analysis; the copy had failed on it (int('6\x00'): exit 5 on every retry). Now it is drawn unturned, where the
    analysis found the face."""
    import struct

    from PIL import Image

    inputs = tmp_path / "in"
    inputs.mkdir()
    src = inputs / "odd_exif.jpg"
    with Image.open(one_face_photo) as im:
        im.convert("RGB").save(src, quality=92)
    # A big-endian TIFF header and one IFD with the one entry, as an APP1 segment right after the JPEG's SOI.
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + entry + b"\x00\x00\x00\x00"
    data = src.read_bytes()
    src.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])
    config = RunConfig(paths=(str(inputs),), out=tmp_path / "r.csv", annotate=tmp_path / "ann")
    report = run_batch(config, classifier=classifier)
    assert report.ok and not report.annotate_failures, report.annotate_failures
    rows = read_timeline(config.out).dropna(subset=["face_id"])
    assert len(rows) == 1
    dst = config.annotate / annotated_name(str(src), "image")
    with Image.open(src) as a, Image.open(dst) as b:
        assert b.size == a.size
        diff = np.abs(np.asarray(a.convert("RGB"), np.int16) - np.asarray(b.convert("RGB"), np.int16)).max(axis=2)
    r = next(rows.itertuples())
    assert diff[int(r.y):int(r.y) + 3, int(r.x):int(r.x) + int(r.w)].mean() > 25  # the box, on the stored pixels


def test_resume_redraws_a_committed_source_whose_annotation_was_cut_off(tmp_path, face_video, one_face_photo,
                                                                       classifier):
    config, report = _run(tmp_path, [face_video.path, one_face_photo], classifier, every=3)
    video = config.annotate / annotated_name(str(tmp_path / "in" / Path(face_video.path).name), "video")
    photo = config.annotate / annotated_name(str(tmp_path / "in" / Path(one_face_photo).name), "image")
    first = video.read_bytes()
    # As a kill during encoding leaves it: the rows committed, the video only as a temporary part.
    video.rename(video.with_name(f".{video.name}.part"))
    photo_mtime = photo.stat().st_mtime_ns
    resumed = RunConfig(paths=config.paths, out=config.out, annotate=config.annotate, resume=True,
                        analyze=config.analyze)
    report = run_batch(resumed, classifier=classifier)
    assert report.skipped == 2 and report.rows == 0
    assert video.exists() and photo.stat().st_mtime_ns == photo_mtime  # only the missing one was redone
    assert len(_frames(video)) == face_video.frames and abs(len(video.read_bytes()) - len(first)) < 0.02 * len(first)
    assert not list(config.annotate.rglob(".*.part"))


def test_annotated_names_mirror_the_inputs_layout():
    assert annotated_name("clips/a b.avi", "video").as_posix() == "clips/a_b.avi.mp4"
    assert annotated_name("clips/day1/x.mp4", "video").as_posix() == "clips/day1/x.mp4"
    assert annotated_name("/abs/p/photo.JPG", "image").as_posix() == "abs/p/photo.JPG"
    assert annotated_name("../up/.hidden.png", "image").as_posix() == "__/up/hidden.png"


def test_annotate_must_be_a_directory(tmp_path, one_face_photo):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(UsageError, match="--annotate .* is a file"):
        RunConfig(paths=(str(one_face_photo),), out=tmp_path / "r.csv", annotate=a_file)


def test_audio_is_copied_and_frames_keep_their_timestamps(tmp_path):
    """A clip with AAC audio: the annotated copy carries the same audio packets, untouched."""
    from fer_batch.annotate import annotate_video
    from fer_batch.records import FaceRecord

    src = tmp_path / "with_audio.mp4"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        a = c.add_stream("aac", rate=44100)
        for i in range(50):
            for p in v.encode(av.VideoFrame.from_ndarray(np.full((240, 320, 3), i * 4, np.uint8), format="rgb24")):
                c.mux(p)
        for k in range(0, 2 * 44100, 1024):
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(k, k + 1024) / 44100)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, k
            for p in a.encode(frame):
                c.mux(p)
        for stream in (v, a):
            for p in stream.encode(None):
                c.mux(p)
    records = [FaceRecord("x", "video", i, i / 25, 0, 50, 50, 80, 80, 0.9, (0.1, 0, 0, 0.7, 0.1, 0, 0.1))
               for i in range(0, 50, 5)]
    dst = tmp_path / "out.mp4"
    facts = annotate_video(src, dst, records, note=sampling_note(5, None))
    assert facts["audio"] == "copied (aac)" and facts["frames"] == 50

    def audio(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    assert audio(dst) == audio(src)
    assert len(_frames(dst)) == 50


def _ts_clip(path: Path, size=(160, 120), frames=20, fps=20, start_s: float = 0.0, sar=None,
             audio_lead_s: float = 0.0) -> Path:
    """An MPEG-TS clip of grey levels with an AAC tone, its timestamps from ``start_s`` (the sound from
    ``audio_lead_s`` before), pixels of aspect ``sar``."""
    with av.open(str(path), "w", format="mpegts") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = *size, "yuv420p"
        v.codec_context.time_base = Fraction(1, fps)
        if sar is not None:
            v.codec_context.sample_aspect_ratio = sar
        a = c.add_stream("aac", rate=48000)
        a.codec_context.time_base = Fraction(1, 48000)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 20 + i * 9, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(start_s * fps) + i, Fraction(1, fps)
            for p in v.encode(frame):
                c.mux(p)
        for k in range(0, round(frames / fps * 48000), 1024):
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(k, k + 1024) / 48000)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, round((start_s - audio_lead_s) * 48000) + k
            for p in a.encode(frame):
                c.mux(p)
        for stream in (v, a):
            for p in stream.encode(None):
                c.mux(p)
    return path


def _times(path: Path, kind: str) -> list[float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [float(p.pts * stream.time_base) for p in c.demux(stream) if p.pts is not None]


def test_a_copy_starts_at_zero_keeps_its_audio_across_a_join_and_its_pixel_shape(tmp_path):
    """Three awkward sources, each annotated (they were not, or wrongly): two recordings with audio joined end to
    end, whose audio timestamps restart at the join (the MP4 muxer refused the copy); a live stream's segment whose
    clock starts an hour in (the copy began with an hour of nothing, its clock not the timeline's); an anamorphic
    recording (non-square pixels: the copy was shown squeezed)."""
    from fer_batch.annotate import annotate_video

    first = _ts_clip(tmp_path / "a.ts", frames=20, start_s=1.0)
    second = _ts_clip(tmp_path / "b.ts", frames=20, start_s=1.0, audio_lead_s=0.4)  # its sound starts earlier
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    dst = tmp_path / "joined.mp4"
    facts = annotate_video(joined, dst, [])
    assert facts["audio"] == "copied (aac)" and facts["frames"] == 40
    video, audio = sorted(_times(dst, "video")), _times(dst, "audio")
    assert len(audio) == len(_times(first, "audio")) + len(_times(second, "audio")) and sorted(audio) == audio
    # The second part follows on from the first, its sound first, its pictures the 0.4 s later they were (the sound
    # had been moved to follow the first part's end, 0.4 s late for the rest of the copy).
    lead = video[20] - audio[len(_times(first, "audio"))]
    assert abs(lead - 0.4) < 0.05 and 1.0 <= audio[len(_times(first, "audio"))] < 1.1, (lead, video[19:21])
    assert all(0.04 < b - a < 0.06 for a, b in zip(video[20:], video[21:]))  # its frames at their own rate

    late = _ts_clip(tmp_path / "late.ts", frames=20, start_s=3600.0)
    dst = tmp_path / "late.mp4"
    annotate_video(late, dst, [])
    with av.open(str(dst)) as c:
        assert float(c.duration / av.time_base) < 2.0  # not an hour and a second
    video = _times(dst, "video")
    assert min(video) < 0.2 and abs(min(_times(dst, "audio"))) < 0.2

    wide = _ts_clip(tmp_path / "wide.ts", frames=5, sar=Fraction(4, 3))
    dst = tmp_path / "wide.mp4"
    annotate_video(wide, dst, [])
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.sample_aspect_ratio == Fraction(4, 3)


def test_a_stop_abandons_the_annotation_without_leaving_a_part(tmp_path, face_video):
    """Ctrl-C during a long video's encoding stops at the next frame; nothing is left under any name."""
    import threading

    from fer_batch.annotate import AnnotateSink
    from fer_batch.errors import Interrupted
    from fer_batch.records import FaceRecord

    stop = threading.Event()
    sink = AnnotateSink(tmp_path / "ann", stop=stop)

    def rows():  # the stop arrives while the file is being drawn
        for i in range(face_video.frames):
            if i == 10:
                stop.set()
            yield FaceRecord("v.mp4", "video", i, i / 12, 0, 10, 10, 50, 50, 0.9, (0.1, 0, 0, 0.7, 0.1, 0, 0.1))

    with pytest.raises(Interrupted, match="--resume"):
        sink.source_done("v.mp4", "video", face_video.path, rows())
    assert [p.name for p in (tmp_path / "ann").rglob("*") if p.is_file()] == [".fer-batch-output"]  # no copy, no part
    assert not sink.failures


def test_annotate_over_the_inputs_is_refused_before_any_work(tmp_path, one_face_photo, monkeypatch, capsys):
    """`fer-batch analyze photos --annotate .` would name each copy exactly as its source (`./photos/...`), and
    `cd photos; fer-batch analyze . --annotate .` would put the copies among the inputs: both refused with exit 2
    before anything is written, and the inputs keep their bytes."""
    from fer_batch.cli import EXIT_USAGE, main

    inputs = tmp_path / "photos"
    inputs.mkdir()
    shutil.copy(one_face_photo, inputs / "portrait.jpg")
    before = (inputs / "portrait.jpg").read_bytes()
    monkeypatch.chdir(tmp_path)
    code = main(["analyze", "photos", "--out", str(tmp_path / "r.csv"), "--annotate", "."])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--annotate '.' holds the input 'photos': a folder fer-batch writes is marked as its output" in err
    # Below the configuration's check, the copies' own: none may land on an input (the names as annotate gives them).
    from fer_batch.annotate import check_not_over_inputs
    from fer_batch.sources import discover

    with pytest.raises(UsageError, match=r"--annotate '\.' would write an annotated copy over the input .*portrait"):
        check_not_over_inputs(Path("."), discover(["photos"]).sources)
    monkeypatch.chdir(inputs)
    assert main(["analyze", ".", "--out", str(tmp_path / "r.csv"), "--annotate", "."]) == EXIT_USAGE
    assert "--annotate '.' is the input folder '.' itself" in capsys.readouterr().err
    assert (inputs / "portrait.jpg").read_bytes() == before
    assert not (tmp_path / "r.csv").exists()


def test_output_folders_inside_an_input_folder_are_not_analysed_again(tmp_path, one_face_photo, classifier):
    """A rerun over a folder that holds the earlier run's annotated copies and charts analyses the inputs only."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(one_face_photo, inputs / "portrait.jpg")
    for _ in range(2):
        config = RunConfig(paths=(str(inputs),), out=tmp_path / "r.csv", annotate=inputs / "annotated",
                           charts=inputs / "charts", overwrite=True)
        report = run_batch(config, classifier=classifier)
        assert report.ok and report.succeeded == 1, report.errors
    assert (inputs / "annotated" / annotated_name(str(inputs / "portrait.jpg"), "image")).exists()
    assert set(read_timeline(tmp_path / "r.csv")["source"]) == {str(inputs / "portrait.jpg")}


def test_names_that_clean_up_alike_get_the_same_copies_in_any_order(tmp_path):
    from fer_batch.annotate import AnnotateSink

    sources = [("in/a b.jpg", "image"), ("in/a_b.jpg", "image"), ("in/c.jpg", "image")]
    forward = AnnotateSink(tmp_path, sources=sources)
    backward = AnnotateSink(tmp_path, sources=sources[::-1])
    paths = {name: forward.path_for(name, media) for name, media in sources}
    assert paths == {name: backward.path_for(name, media) for name, media in reversed(sources)}
    assert len(set(paths.values())) == 3
    assert paths["in/c.jpg"] == tmp_path / "in" / "c.jpg"  # no collision, no digest
    assert paths["in/a_b.jpg"].name.startswith("a_b-") and paths["in/a b.jpg"].name.startswith("a_b-")


@pytest.mark.parametrize("turns", [1, 3])
def test_a_video_stored_sideways_is_analysed_and_annotated_upright(tmp_path, face_video, classifier, turns):
    """A phone video stored sideways with a display-rotation tag: the same faces as in the upright control, boxes
    in the upright frame, and an annotated copy that is upright itself (no tag needed)."""
    import synthetic_media as synthetic

    if not synthetic.h264_available():
        pytest.skip("needs PyAV's H.264 encoder")
    upright = synthetic.write_rotated_copy(face_video.path, tmp_path / "upright.mp4", 0)
    sideways = synthetic.write_rotated_copy(face_video.path, tmp_path / "sideways.mp4", turns)
    with av.open(str(sideways)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (face_video.size[1], face_video.size[0])  # really stored sideways
        assert frame.rotation % 360 == 90 * turns
    timelines = {}
    for clip in (upright, sideways):
        config = RunConfig(paths=(str(clip),), out=tmp_path / f"{clip.stem}.csv", annotate=tmp_path / f"ann-{clip.stem}",
                           analyze=AnalyzeConfig())
        report = run_batch(config, classifier=classifier)
        assert report.ok and not report.annotate_failures, (report.errors, report.annotate_failures)
        timelines[clip.stem] = read_timeline(config.out).set_index("frame")
    a, b = timelines["upright"], timelines["sideways"]
    faces_a, faces_b = a["face_id"].notna().sum(), b["face_id"].notna().sum()
    assert faces_a > face_video.frames // 3 and abs(faces_a - faces_b) <= 0.05 * faces_a
    both = a["x"].notna() & b["x"].notna()
    for col in ("x", "y", "w", "h"):  # the same upright boxes, to the codec's noise
        assert (a.loc[both, col] - b.loc[both, col]).abs().median() <= 3, col
    copy = tmp_path / "ann-sideways" / annotated_name(str(sideways), "video")
    with av.open(str(copy)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == face_video.frames
    assert (frames[0].width, frames[0].height) == face_video.size and frames[0].rotation == 0


def test_a_video_whose_frame_size_changes_gets_boxes_copies_and_thumbnails_of_its_own_frames(tmp_path, classifier):
    """Recordings of two sizes joined into one stream: the faces of the larger part are found where they are in
    it (OpenCV's decoder had returned the last small frame again, so every box after the change was that frame's),
    the copy has every frame, and a report thumbnail after the change is cut from its own frame."""
    import synthetic_media as synthetic
    from fer_batch.thumbs import _video_frames

    if not synthetic.h264_available():
        pytest.skip("needs PyAV's H.264 encoder")
    path = tmp_path / "joined.ts"
    scenes = synthetic.write_joined_sizes(path, ((320, 240), (640, 480)), frames=20, fps=20, script="still")
    config, report = _run(tmp_path, [path], classifier)
    assert report.ok and not report.annotate_failures, (report.errors, report.annotate_failures)
    faces = read_timeline(config.out).dropna(subset=["face_id"])
    for k, scene in enumerate(scenes):
        part = faces[(faces["frame"] >= 20 * k) & (faces["frame"] < 20 * (k + 1))]
        assert len(part) >= 18, k
        for r in part.itertuples():
            x0, y0, x1, y1 = scene.face_states(int(r.frame) - 20 * k)[0].box
            ix = max(0.0, min(x1, r.x + r.w) - max(x0, r.x)) * max(0.0, min(y1, r.y + r.h) - max(y0, r.y))
            iou = ix / ((x1 - x0) * (y1 - y0) + r.w * r.h - ix)
            assert iou > 0.4, (r.frame, (r.x, r.y, r.w, r.h), (x0, y0, x1, y1))
    assert len(_frames(config.annotate / annotated_name(str(tmp_path / "in" / path.name), "video"))) == 40
    (index, bgr), = _video_frames(tmp_path / "in" / path.name, {27: None})
    assert index == 27 and bgr.shape == (480, 640, 3)
    assert np.abs(bgr[:, :, ::-1].astype(int) - scenes[1].render(7)).mean() < 9


def test_a_colour_profile_is_kept_only_where_it_describes_the_copys_pixels(tmp_path, one_face_photo, classifier):
    """An RGB photo's ICC profile goes with its annotated copy; a grey photo's does not (the copy is RGB)."""
    from PIL import Image, ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    inputs = tmp_path / "in"
    inputs.mkdir()
    with Image.open(one_face_photo) as im:
        im.convert("RGB").save(inputs / "colour.jpg", quality=92, icc_profile=srgb)
        im.convert("L").save(inputs / "grey.jpg", quality=92, icc_profile=b"a grey profile, not an RGB one")
    config = RunConfig(paths=(str(inputs),), out=tmp_path / "r.csv", annotate=tmp_path / "ann")
    report = run_batch(config, classifier=classifier)
    assert report.ok and not report.annotate_failures
    copies = {name: config.annotate / annotated_name(str(inputs / name), "image") for name in ("colour.jpg", "grey.jpg")}
    with Image.open(copies["colour.jpg"]) as im:
        assert im.info.get("icc_profile") == srgb
    with Image.open(copies["grey.jpg"]) as im:
        assert im.mode == "RGB" and "icc_profile" not in im.info


def test_each_face_is_drawn_in_its_own_emotions_chart_colour(tmp_path):
    """A lossless (PNG) photo with two faces of different top emotions: each box's left edge is that emotion's
    colour from the charts, so a copy cannot draw the wrong emotion, or every face alike, unnoticed."""
    from PIL import Image

    from fer_batch.annotate import annotate_photo
    from fer_batch.charts import COLORS
    from fer_batch.labels import EMOTIONS
    from fer_batch.records import FaceRecord

    src = tmp_path / "two.png"
    Image.fromarray(np.full((400, 600, 3), 128, np.uint8)).save(src)
    happy = tuple(0.8 if e == "happy" else 0.2 / 6 for e in EMOTIONS)
    sad = tuple(0.8 if e == "sad" else 0.2 / 6 for e in EMOTIONS)
    records = [FaceRecord("two.png", "image", 0, None, 0, 60, 150, 120, 120, 0.9, happy),
               FaceRecord("two.png", "image", 0, None, 1, 380, 150, 120, 120, 0.9, sad)]
    dst = tmp_path / "out.png"
    annotate_photo(src, dst, records)
    out = np.asarray(Image.open(dst).convert("RGB")).astype(int)
    for rec, emotion in ((records[0], "happy"), (records[1], "sad")):
        want = np.array([int(COLORS[emotion][i:i + 2], 16) for i in (1, 3, 5)])
        edge = out[rec.y + rec.h // 2, rec.x]  # the middle of the box's left side
        assert np.abs(edge - want).max() <= 2, (emotion, edge, want)


def test_an_odd_sized_video_is_padded_by_one_pixel_and_pcm_audio_is_left_out_with_a_note(tmp_path):
    """yuv420p needs even sides: a 321x241 clip comes out 322x242 with every frame; its PCM audio (which MP4 cannot
    hold without re-encoding) is left out, and the facts say why."""
    from fer_batch.annotate import annotate_video

    src = _odd_avi_with_pcm_audio(tmp_path / "odd.avi")
    with av.open(str(src)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (321, 241)
        assert c.streams.audio[0].codec_context.name == "pcm_s16le"
    dst = tmp_path / "odd.mp4"
    facts = annotate_video(src, dst, [])
    assert facts["frames"] == 20 and facts["size"] == (321, 241)
    assert facts["audio"].startswith("not copied (pcm_s16le")
    with av.open(str(dst)) as c:
        assert not c.streams.audio
        frames = list(c.decode(video=0))
    assert len(frames) == 20 and (frames[0].width, frames[0].height) == (322, 242)


def test_the_cli_says_which_annotated_copy_left_its_audio_out(tmp_path, capsys):
    from fer_batch.cli import main

    src = _odd_avi_with_pcm_audio(tmp_path / "in" / "odd.avi")
    code = main(["analyze", str(src), "--out", str(tmp_path / "t.csv"), "--annotate", str(tmp_path / "ann"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"annotate: {src}: audio not copied (pcm_s16le: not among the codecs MP4 players commonly play; " in err


def _odd_avi_with_pcm_audio(src):
    """A 321x241 MPEG-4 clip of 20 frames with a second of PCM audio (which MP4 cannot hold as it is)."""
    src.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src), "w") as c:
        v = c.add_stream("mpeg4", rate=25)
        v.width, v.height, v.pix_fmt = 321, 241, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=8000)
        a.layout = "mono"
        for i in range(20):
            img = np.full((241, 321, 3), 40 + 8 * i, np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        samples = np.zeros((1, 8000), np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for stream, f in ((a, frame), (a, None), (v, None)):
            for p in stream.encode(f):
                c.mux(p)
    return src


@pytest.mark.parametrize("boxes", [
    [(108, 8, 250, 250)],  # at the frame's top: the label goes below the box, where a panel used to cover it
    [(20, 200, 90, 90), (130, 200, 90, 90), (240, 200, 90, 90), (350, 200, 90, 90)],  # a tight row of faces
    [(40, 4, 120, 120), (200, 4, 120, 120), (360, 4, 110, 120)],  # a tight row at the top edge
])
def test_no_probability_panel_covers_a_label(boxes):
    from fer_batch.overlay import _overlap, draw_faces
    from fer_batch.records import FaceRecord

    img = np.full((450, 480, 3), 128, np.uint8)
    probs = (0.05, 0.02, 0.03, 0.1, 0.1, 0.1, 0.6)
    records = [FaceRecord("g.jpg", "image", 0, None, i, x, y, w, h, 0.9, probs) for i, (x, y, w, h) in enumerate(boxes)]
    placed = draw_faces(img, records)
    assert [fid for fid, _, _ in placed] == list(range(len(boxes)))
    for _, label, _ in placed:
        assert all(_overlap(label, panel) == 0 for _, _, panel in placed), placed
        x0, y0, x1, y1 = label
        assert 0 <= x0 < x1 <= 480 and 0 <= y0 < y1 <= 450  # inside the frame


def test_labels_of_faces_side_by_side_do_not_cover_each_other():
    """A row of faces closer than their labels are wide: every label above its box covered its neighbour's (in a
    crowd '#0 neutral 0.62' was hidden under #2's); they alternate above and below, each still by its box."""
    from fer_batch.overlay import _overlap, draw_faces
    from fer_batch.records import FaceRecord

    img = np.full((360, 640, 3), 128, np.uint8)
    probs = (0.05, 0.02, 0.03, 0.1, 0.1, 0.1, 0.6)
    boxes = [(40 + 75 * i, 150, 60, 60) for i in range(7)]
    records = [FaceRecord("g.jpg", "image", 0, None, 10 + i, x, y, w, h, 0.9, probs)
               for i, (x, y, w, h) in enumerate(boxes)]
    labels = [label for _, label, _ in draw_faces(img, records)]
    assert all(_overlap(a, b) == 0 for i, a in enumerate(labels) for b in labels[i + 1:]), labels
    for (x, y, w, h), (_, ly0, _, ly1) in zip(boxes, labels):
        assert ly1 <= y or ly0 >= y + h  # just above or just below its box
        assert y - 40 < ly0 and ly1 < y + h + 40


def test_a_copy_that_cannot_be_written_exits_5_and_is_counted_on_the_last_line(tmp_path, one_face_photo, capsys):
    """An annotated copy is an output: one that cannot be written (here a folder stands where it goes; a full disk
    does the same) ends the run with exit 5 and a count on the last line, not 0 with every file "succeeded"."""
    from fer_batch.annotate import annotated_name
    from fer_batch.cli import EXIT_OUTPUT, main

    ann = tmp_path / "ann"
    dst = ann / annotated_name(str(one_face_photo), "image")
    dst.mkdir(parents=True)
    code = main(["analyze", str(one_face_photo), "--out", str(tmp_path / "r.csv"), "--annotate", str(ann), "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_OUTPUT, err
    # The copy's own path, not the temporary file it is written to first (nor an errno).
    assert f"annotate: {one_face_photo}: IsADirectoryError: Is a directory: {str(dst)!r}" in err
    assert ".part" not in err and "Errno" not in err
    assert err.strip().splitlines()[-1].endswith("; 1 row written; 1 annotated copy not written")


def test_a_page_of_another_shape_is_fitted_inside_the_copy_not_stretched(tmp_path):
    """A portrait page after a landscape one: scaled to fit the copy's frame (sized by the first page) with its shape
    kept, on black; it had been stretched to the landscape frame, squashing its faces."""
    import av
    from PIL import Image

    from fer_batch.annotate import annotate_video

    landscape = Image.new("RGB", (80, 40), (200, 40, 40))
    portrait = Image.new("RGB", (40, 80), (40, 40, 200))
    landscape.save(tmp_path / "pages.tif", save_all=True, append_images=[portrait])
    annotate_video(tmp_path / "pages.tif", tmp_path / "pages.mp4", [])
    with av.open(str(tmp_path / "pages.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert frames[0].shape == frames[1].shape == (40, 80, 3)
    page = frames[1]  # 20 px wide at 40 high: columns 30-49, black either side
    assert page[:, :26].max() < 40 and page[:, 54:].max() < 40
    assert np.abs(page[4:36, 33:47].mean(axis=(0, 1)) - (40, 40, 200)).max() < 25


def test_frames_whose_timestamps_do_not_grow_are_copied_in_order(tmp_path):
    """H.264 with B-frames in an AVI decodes with pts 1, 4, 3, 5, 2, ...: the encoder refused the copy ("Invalid
    argument", exit 5, and again at every --resume)."""
    import synthetic_media as synthetic

    from fer_batch.annotate import annotate_video

    if not synthetic.h264_available():
        pytest.skip("needs PyAV's H.264 encoder")
    src = tmp_path / "bframes.avi"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(src)) as c:
        pts = [f.pts for f in c.decode(video=0)]
    assert any(b <= a for a, b in zip(pts, pts[1:])), pts  # the input is as described
    facts = annotate_video(src, tmp_path / "copy.mp4", [])
    with av.open(str(tmp_path / "copy.mp4")) as c:
        frames = list(c.decode(video=0))
    assert facts["frames"] == len(frames) == 30
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
    greys = [int(f.to_ndarray(format="gray").mean()) for f in frames]
    assert all(abs(g - 8 * i) <= 6 for i, g in enumerate(greys)), greys  # in display order


def test_a_video_with_a_damaged_stretch_is_copied_around_it(tmp_path, face_video, classifier):
    """The analysis steps over a damaged stretch and keeps the rows around it; the copy had failed whole at the
    first bad packet (InvalidDataError), and --resume could never draw it."""
    import synthetic_media as synthetic

    (tmp_path / "in").mkdir()
    synthetic.write_damaged_copy(face_video.path, tmp_path / "in" / "damaged.mp4", 0.4, 0.5)
    config = RunConfig(paths=(str(tmp_path / "in"),), out=tmp_path / "r.csv", annotate=tmp_path / "ann")
    report = run_batch(config, classifier=classifier)
    assert report.annotate_failures == [] and [e.error for e in report.errors] != []  # its gap is an error row
    (copy,) = report.outputs["annotate"]
    with av.open(str(copy)) as c:
        written = len(list(c.decode(video=0)))
    analysed = read_timeline(tmp_path / "r.csv")["frame"].nunique()
    assert 0.5 * face_video.frames < written < face_video.frames and abs(written - analysed) <= 2, (written,
                                                                                                   analysed)


def test_the_cli_names_no_annotate_folder_where_every_file_failed(tmp_path, capsys):
    """The last lines named the --annotate folder although no copy was made and the folder was never created."""
    from fer_batch.cli import EXIT_SOME_FAILED, main

    (tmp_path / "broken.jpg").write_bytes(b"")
    ann = tmp_path / "ann"
    assert main(["analyze", str(tmp_path / "broken.jpg"), "--out", str(tmp_path / "r.csv"), "--annotate", str(ann),
                 "--quiet"]) == EXIT_SOME_FAILED
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "annotate:" not in err and not ann.exists()


def test_a_panel_covers_its_own_face_rather_than_a_neighbours():
    """A portrait frame, two faces one above the other, no room beside them: face #1's bars went above its box,
    inside face #0's, where they read as #0's."""
    from fer_batch.overlay import _overlap, draw_faces
    from fer_batch.records import FaceRecord

    img = np.full((640, 360, 3), 128, np.uint8)
    boxes = [(60, 40, 240, 240), (60, 360, 240, 240)]
    probs = (0.05, 0.01, 0.04, 0.6, 0.2, 0.05, 0.05)
    records = [FaceRecord("v.mp4", "video", 0, 0.0, i, *box, 0.9, probs) for i, box in enumerate(boxes)]
    panels = {fid: panel for fid, _, panel in draw_faces(img, records)}
    x, y, w, h = boxes[0]
    assert _overlap(panels[1], (x, y, x + w, y + h)) == 0, panels
    x, y, w, h = boxes[1]
    assert _overlap(panels[1], (x, y, x + w, y + h)) > 0  # on its own face: the one place left


def test_the_sampling_legend_takes_a_corner_clear_of_labels_before_one_clear_of_faces():
    """480x270, two overlapping faces: the top-left corner covered a face's panel less than the bottom-left one,
    and half of the label '#0 happy 0.60' (600 random layouts of 1-2 faces: 1.7% had a label covered so)."""
    from fer_batch.annotate import _Drawing
    from fer_batch.overlay import _overlap
    from fer_batch.records import FaceRecord

    probs = (0.05, 0.01, 0.04, 0.6, 0.2, 0.05, 0.05)
    faces = [FaceRecord("v.mp4", "video", 0, 0.0, i, *box, 0.9, probs)
             for i, box in enumerate([(228, 38, 154, 154), (282, 112, 151, 151)])]
    drawing = _Drawing(faces, sampling_note(3, None))
    plain = np.full((270, 480, 3), 120, np.uint8)
    without = plain.copy()
    labels = [label for _, label, _ in drawing.draw_faces(without, faces, drawing.colours)]
    legend = np.argwhere((drawing(plain.copy(), 0, (480, 270)) != without).any(axis=2))  # the legend's pixels
    (y0, x0), (y1, x1) = legend.min(axis=0), legend.max(axis=0) + 1
    assert x1 - x0 > 150 and y1 - y0 > 15  # a band of text
    assert all(_overlap((x0, y0, x1, y1), label) == 0 for label in labels), (drawing.corner, labels)


@pytest.mark.parametrize("name, save", [("a.png", {}), ("a.webp", {"lossless": True}), ("a.tif", {})])
def test_a_see_through_photo_stays_see_through_and_a_lossless_one_lossless(tmp_path, name, save):
    """The copy of an RGBA PNG had white corners where the photo was transparent, and a lossless WebP came back
    lossy at quality 80 (414 kB -> 31 kB). What is drawn shows on transparent pixels too."""
    from PIL import Image

    from fer_batch.annotate import annotate_photo
    from fer_batch.records import FaceRecord

    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (60, 80, 4), dtype=np.uint8)
    rgba[:20, :, 3] = 0  # the top third transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / name, **save)
    annotate_photo(tmp_path / name, tmp_path / f"none-{name}", [])
    with Image.open(tmp_path / f"none-{name}") as copy:
        assert copy.mode == "RGBA"
        back = np.asarray(copy)
    np.testing.assert_array_equal(back[:, :, 3], rgba[:, :, 3])
    seen = rgba[:, :, 3] > 0  # (a lossless format may store anything under a transparent pixel)
    np.testing.assert_array_equal(back[seen][:, :3], rgba[seen][:, :3])
    face = FaceRecord(name, "image", 0, None, 0, 10, 5, 40, 40, 0.9, (0.05, 0.0, 0.0, 0.85, 0.05, 0.0, 0.05))
    annotate_photo(tmp_path / name, tmp_path / f"face-{name}", [face])
    with Image.open(tmp_path / f"face-{name}") as copy:
        drawn = np.asarray(copy)
    assert (drawn[5:20, 10, 3] == 255).all()  # the box's left edge, over the transparent top: opaque


def test_a_lossy_webp_is_copied_at_the_quality_of_a_jpeg(tmp_path):
    """Pillow's default for WebP is quality 80: the copy of a photo lost more than a JPEG's copy (quality 92) does."""
    from PIL import Image

    from fer_batch.annotate import _webp_is_lossless, annotate_photo

    y, x = np.mgrid[0:96, 0:128]
    pixels = np.dstack([x * 2, y * 2, (x + y)]).astype(np.uint8)  # a photo-like smooth image
    Image.fromarray(pixels).save(tmp_path / "a.webp", quality=95)
    annotate_photo(tmp_path / "a.webp", tmp_path / "b.webp", [])
    assert not _webp_is_lossless(tmp_path / "b.webp")
    with Image.open(tmp_path / "a.webp") as a:
        source = np.asarray(a.convert("RGB"), np.int16)
        a.save(tmp_path / "default.webp")  # as the copy was made before
    with Image.open(tmp_path / "b.webp") as b, Image.open(tmp_path / "default.webp") as d:
        assert np.abs(np.asarray(b.convert("RGB"), np.int16) - source).mean() < \
            np.abs(np.asarray(d.convert("RGB"), np.int16) - source).mean()


def test_a_video_whose_last_frame_comes_after_a_gap_keeps_its_length(tmp_path):
    """A 1-s clip whose last frame comes at 3 s (a screen recording that stood still): with B-frames the copy's MP4
    durations read 1.02 s, as tools that read them (FFmpeg's) then play it."""
    import av

    from fer_batch.annotate import annotate_video

    tb = Fraction(1, 1000)
    with av.open(str(tmp_path / "vfr.mp4"), "w") as out:
        v = out.add_stream("libx264", rate=30)
        v.pix_fmt, v.width, v.height, v.options = "yuv420p", 64, 48, {"bf": "0"}
        v.codec_context.time_base = tb
        for i, pts in enumerate([*range(0, 990, 33), 3000]):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="bgr24")
            frame.pts, frame.time_base = pts, tb
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    annotate_video(tmp_path / "vfr.mp4", tmp_path / "copy.mp4", [])
    with av.open(str(tmp_path / "vfr.mp4")) as a, av.open(str(tmp_path / "copy.mp4")) as b:
        assert a.duration / av.time_base >= 3.0  # (the source is right)
        assert 3.0 < b.duration / av.time_base < 3.2  # its last frame lasts one frame interval of its own rate
        assert [f.time for f in b.decode(video=0)][-2:] == pytest.approx([0.957, 3.0])


def test_what_is_drawn_on_a_see_through_photo_is_opaque_all_over(tmp_path):
    """Pixels stored as (0, 0, 0, 0), as Pillow and most editors store full transparency: a shaded panel left them
    black, so they stayed transparent (4,759 of a panel's 6,264 pixels) and its grey text sat on whatever the page
    behind showed."""
    from PIL import Image

    from fer_batch.annotate import annotate_photo
    from fer_batch.overlay import draw_faces
    from fer_batch.records import FaceRecord

    Image.new("RGBA", (200, 150), (0, 0, 0, 0)).save(tmp_path / "a.png")
    face = FaceRecord("a.png", "image", 0, None, 0, 40, 40, 60, 60, 0.9, (0.05, 0.0, 0.0, 0.85, 0.05, 0.0, 0.05))
    annotate_photo(tmp_path / "a.png", tmp_path / "b.png", [face])
    with Image.open(tmp_path / "b.png") as b:
        alpha = np.asarray(b)[:, :, 3]
    ((_, label, panel),) = draw_faces(np.full((150, 200, 3), 255, np.uint8), [face])
    for x0, y0, x1, y1 in (label, panel):
        assert (alpha[y0:y1, x0:x1] == 255).all(), (label, panel)
    assert alpha.mean() < 255 / 2  # the rest stays see-through


def test_a_png_whose_one_colour_stands_for_transparent_keeps_it(tmp_path):
    """An RGB PNG with a tRNS colour (transparency=(0, 255, 0)): the analysis saw the green as green, and the copy
    showed it solid."""
    from PIL import Image

    from fer_batch.annotate import annotate_photo
    from fer_batch.sources import Source, read_image

    pixels = np.full((30, 40, 3), 90, np.uint8)
    pixels[:10] = (0, 255, 0)
    Image.fromarray(pixels).save(tmp_path / "a.png", transparency=(0, 255, 0))
    assert (read_image(Source(tmp_path / "a.png", "a.png", "image"))[:10] == 255).all()  # on white, as RGBA's are
    annotate_photo(tmp_path / "a.png", tmp_path / "b.png", [])
    with Image.open(tmp_path / "b.png") as b:
        alpha = np.asarray(b.convert("RGBA"))[:, :, 3]
    assert (alpha[:10] == 0).all() and (alpha[10:] == 255).all()
