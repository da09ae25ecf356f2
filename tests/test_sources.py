"""Walking inputs and decoding frames: real files written to tmp_path."""

from __future__ import annotations

import os
import re
import shutil
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import synthetic_media as synthetic
from fer_batch.errors import InputError, UsageError
from fer_batch.sources import Source, discover, iter_frames, read_image, size_changes
from fer_batch.sources.video import _VideoClock


def _img(path, size=(32, 24), mode="RGB", color=(10, 200, 30)):
    Image.new(mode, size, color if mode in ("RGB", "RGBA", "CMYK") else 128).save(path)
    return path


def _video(path, n=30, fps=10.0, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        frame = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
        cv2.putText(frame, str(i), (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    return path


def test_discover_sorted_skips_hidden_and_survives_symlink_loop(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    _img(tmp_path / "b" / "2.png")
    _img(tmp_path / "b" / "1.jpg")
    _img(tmp_path / "a" / "z.PNG")
    _img(tmp_path / ".hidden.png")
    (tmp_path / ".git").mkdir()
    _img(tmp_path / ".git" / "x.png")
    (tmp_path / "notes.txt").write_text("not media")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    found = discover([str(tmp_path)])
    names = [os.path.relpath(s.name, tmp_path) for s in found.sources]
    assert names == ["a/z.PNG", "b/1.jpg", "b/2.png"]
    assert found.skipped == 1
    assert found.rejected == []


def test_explicit_non_media_file_is_rejected_with_reason(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    found = discover([str(txt)])
    assert found.sources == []
    assert found.rejected[0][0] == str(txt)
    assert "not a supported image or video" in found.rejected[0][1]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "1"])
def test_image_modes_become_rgb(tmp_path, mode):
    path = tmp_path / f"im_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    _img(path, mode=mode)
    rgb = read_image(Source(path, path.name, "image"))
    assert rgb.dtype == np.uint8 and rgb.shape == (24, 32, 3)


def test_a_float_image_with_nan_pixels_reads_them_as_black_without_a_warning(tmp_path):
    """NumPy warned "invalid value encountered in cast" on stderr for each such image (a float TIFF with NaN)."""
    import warnings

    pixels = np.full((24, 32), 200.0, np.float32)
    pixels[2, 3] = np.nan
    path = tmp_path / "float_nan.tif"
    Image.fromarray(pixels, mode="F").save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = read_image(Source(path, path.name, "image"))
    assert rgb[2, 3].tolist() == [0, 0, 0] and rgb[0, 0].tolist() == [200, 200, 200]


def test_16bit_image_scaled_to_8bit(tmp_path):
    path = tmp_path / "deep.png"
    arr = np.full((20, 30), 65535, np.uint16)
    arr[:, :15] = 257 * 100
    Image.fromarray(arr).save(path)
    rgb = read_image(Source(path, path.name, "image"))
    assert rgb[0, 0, 0] == 100 and rgb[0, -1, 0] == 255


def test_exif_orientation_is_honoured(tmp_path):
    path = tmp_path / "rotated.jpg"
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90 degrees clockwise
    im.save(path, exif=exif)
    rgb = read_image(Source(path, path.name, "image"))
    assert rgb.shape[:2] == (40, 20)


def test_huge_image_is_refused_before_decoding(tmp_path):
    path = synthetic.write_png_claiming(tmp_path / "huge.png", 12000, 10000)
    with pytest.raises(InputError, match="megapixel limit"):
        read_image(Source(path, path.name, "image"))


@pytest.mark.parametrize("name,content,reason", [
    ("empty.jpg", b"", "empty file"),
    ("noise.jpg", os.urandom(2000), "not a readable image"),
    ("text.png", b"this is just text\n" * 10, "not a readable image"),
])
def test_bad_images_raise_input_error_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=reason) as info:
        read_image(Source(path, name, "image"))
    assert info.value.source == name


@pytest.mark.parametrize("container,fourcc,kind", [(".mp4", "mp4v", "an MP4/MOV video (.mp4, .mov)"),
                                                   (".mkv", "MJPG", "a Matroska/WebM video (.mkv, .webm)"),
                                                   (".avi", "MJPG", "an AVI video (.avi)")])
def test_a_video_named_as_an_image_is_named_as_a_video(tmp_path, container, fourcc, kind):
    """A clip saved under a photo's suffix (a common slip when exporting) is not "corrupt": the error says what its
    bytes are, so that the user renames it rather than discards it."""
    clip = tmp_path / f"clip{container}"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*fourcc), 10.0, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    assert len(list(iter_frames(Source(clip, clip.name, "video")))) == 5  # a real video under its own name
    renamed = clip.rename(tmp_path / "holiday.jpg")
    with pytest.raises(InputError) as info:
        read_image(Source(renamed, renamed.name, "image"))
    assert info.value.reason == f"not a readable image; its bytes are {kind}: give it that format's suffix"


def test_a_heif_like_brand_is_not_taken_for_a_video(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(200))  # an ISO-BMFF still image, not decodable here
    with pytest.raises(InputError) as info:
        read_image(Source(path, path.name, "image"))
    assert info.value.reason == "not a readable image (unknown or corrupt format)"


@pytest.mark.parametrize("size", [(1, 1), (10, 10000)])
def test_extreme_aspect_images_decode(tmp_path, size):
    path = _img(tmp_path / "odd.png", size=size)
    assert read_image(Source(path, path.name, "image")).shape == (size[1], size[0], 3)


def test_video_every_and_fps_sampling(tmp_path):
    path = _video(tmp_path / "v.mp4", n=30, fps=10.0)
    src = Source(path, "v.mp4", "video")
    all_frames = list(iter_frames(src))
    assert [f.index for f in all_frames] == list(range(30))
    assert all_frames[10].time_s == pytest.approx(1.0, abs=0.01)
    assert [f.index for f in iter_frames(src, every=7)] == [0, 7, 14, 21, 28]
    sampled = [f.index for f in iter_frames(src, fps=2.0)]
    assert sampled == [0, 5, 10, 15, 20, 25]
    assert all_frames[0].rgb.shape == (48, 64, 3)


def test_truncated_video_keeps_frames_then_reports(tmp_path):
    path = _video(tmp_path / "full.mp4", n=60, fps=10.0, size=(160, 120))
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    # mp4v writes the index (moov) last: keep it but drop the second half of the frame data before it.
    moov = data.rfind(b"moov") - 4
    mdat_start = data.find(b"mdat") + 4
    cut.write_bytes(data[:mdat_start + (moov - mdat_start) // 2] + b"\0" * ((moov - mdat_start) // 2) + data[moov:])
    frames = []
    with pytest.raises(InputError, match=r"video ended after \d+ of the 60 frames|frames could not be decoded"):
        for f in iter_frames(Source(cut, "cut.mp4", "video")):
            frames.append(f.index)
    assert 0 < len(frames) < 60  # the frames before the cut were kept
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(5000))
    with pytest.raises(InputError, match="cannot open|no frame"):
        list(iter_frames(Source(garbage, "garbage.mp4", "video")))


# A variable-frame-rate video: frames 0-29 10 ms apart, then 200 ms apart (60 frames, 6.1 s).
VFR_TIMES_MS = [10 * i for i in range(30)] + [300 + 200 * k for k in range(30)]


def _pyav_video(path, times_ms, time_base=Fraction(1, 1000), size=(64, 48), noise=False):
    """An H.264 video written by PyAV with the given presentation times, stored in ``time_base`` units."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = time_base
        for i, ms in enumerate(times_ms):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) if noise else \
                np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = round(Fraction(ms, 1000) / time_base), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("time_base,tolerance", [(Fraction(1, 1000), 0.001), (Fraction(1, 30), 0.034)],
                         ids=["ms_timestamps", "coarse_timestamps"])
def test_vfr_mkv_decodes_fully_with_container_times(tmp_path, time_base, tolerance):
    # MKV stores no frame count: OpenCV estimates one from duration x fps (6.1 s x 30 = 184), three times the truth.
    # With a 1/30 s time base the first 30 frames share timestamps (0, 0, 33, 33, 33, 67 ms, ...); each is repaired
    # on its own rather than switching to index / fps (which put frame 29 at 0.97 s instead of 0.29 s).
    path = _pyav_video(tmp_path / "vfr.mkv", VFR_TIMES_MS, time_base=time_base)
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) > 60 / 0.9 + 5  # the header over-announces, as in the wild
    cap.release()
    frames = list(iter_frames(Source(path, "vfr.mkv", "video"), bgr=True))
    assert [f.index for f in frames] == list(range(60))
    times = np.array([f.time_s for f in frames])
    assert np.all(np.diff(times) >= 0)
    assert np.abs(times - np.array(VFR_TIMES_MS) / 1000).max() <= tolerance
    sampled = [f.index for f in iter_frames(Source(path, "vfr.mkv", "video"), fps=2.0)]
    # By video time: the first frame at or after each 0.5 s step (the first 30 frames all fall in the first step).
    assert sampled == sorted({next(i for i, ms in enumerate(VFR_TIMES_MS) if ms >= step)
                              for step in range(0, VFR_TIMES_MS[-1] + 1, 500)})


def test_truncated_mkv_is_still_reported(tmp_path):
    # Noise frames make every frame large, so cutting the file in half loses the second half of its frames.
    full = _pyav_video(tmp_path / "full.mkv", VFR_TIMES_MS, noise=True)
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:len(data) // 2])
    frames = []
    with pytest.raises(InputError, match=r"video ended after \d+ of the \d+ frames its header announces "
                                         r"\(truncated or corrupt\), [\d.]+ s into its 6.1 s") as info:
        for f in iter_frames(Source(cut, "cut.mkv", "video")):
            frames.append(f.index)
    assert info.value.source == "cut.mkv"
    assert 0 < len(frames) < 60


def _clock_times(msecs, fps):
    clock = _VideoClock(fps)
    return [clock.time(i, m) for i, m in enumerate(msecs)]


def test_video_clock_repairs_single_timestamps():
    # A glitch (duplicate or backwards) is repaired alone; the timestamps after it are used again.
    assert _clock_times([0, 100, 100, 300, 50, 500], 10.0) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    # No timestamps (OpenCV reports 0 for every frame): index / header fps, or None without a usable fps.
    assert _clock_times([0, 0, 0, 0], 25.0) == pytest.approx([0, 0.04, 0.08, 0.12])
    assert _clock_times([0, 0, 0], None) == [0.0, None, None]
    # Unusable values and a first frame without one.
    assert _clock_times([float("nan"), 40, -5.0, 120], 25.0) == pytest.approx([0, 0.04, 0.08, 0.12])
    # Repairs step at the interval measured between the last two timestamps, so frames sharing a coarse timestamp
    # are spread out, and the times never go backwards.
    times = _clock_times([0, 0, 33, 33, 33, 67, 67, 67, 67, 100], 30.0)
    assert times[3] == pytest.approx(0.033 + 0.0165) and times[5] == pytest.approx(0.067)
    assert all(b >= a for a, b in zip(times, times[1:]))


def test_fps_sampling_steps_over_a_far_jump_in_one_go():
    """The next sampling time after t, stepping by 1/fps: the same as stepping one interval at a time for ordinary
    gaps; for a timestamp that jumps 10^7 s ahead (10^8 steps of the old loop) and one past float resolution (where
    the old loop never ended), the first sampling time after it, in a bounded number of steps."""
    from fer_batch.sources.video import _next_sample

    def stepped(next_t, t, fps):
        while next_t <= t + 1e-6:
            next_t += 1.0 / fps
        return next_t

    for next_t, t, fps in ((0.0, 0.0, 2.0), (0.5, 0.53, 2.0), (1.0, 7.3, 3.0), (0.0, 999.9, 1.0)):
        assert _next_sample(next_t, t, fps) == stepped(next_t, t, fps)
    far = _next_sample(0.1, 1e7, 10.0)
    assert 1e7 < far <= 1e7 + 0.1 + 1e-6
    assert _next_sample(0.1, 1e16, 10.0) > 1e16


@pytest.mark.parametrize("suffix, fourcc", [(".mov", "mp4v"), (".mkv", "mp4v"), (".m4v", "mp4v"), (".webm", "VP80"),
                                            (".mpg", "PIM1"), (".mpeg", "PIM1"), (".wmv", "WMV2"), (".AVI", "MJPG")])
def test_every_video_suffix_is_found_in_a_folder_and_decoded(tmp_path, suffix, fourcc):
    """README's video suffixes, each written by OpenCV's own FFmpeg in a codec its container holds, found inside a
    folder (an unknown suffix would only be counted as ignored) and decoded frame by frame."""
    import cv2

    from fer_batch.sources import discover, iter_frames

    path = tmp_path / f"clip{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (64, 48))  # MPEG-1 wants 25 fps
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {suffix} here"
    for level in range(0, 250, 50):
        writer.write(np.full((48, 64, 3), level, np.uint8))
    writer.release()
    found = discover([tmp_path])
    assert [(s.name, s.media) for s in found.sources] == [(str(path), "video")] and found.skipped == 0
    assert [f.index for f in iter_frames(found.sources[0])] == [0, 1, 2, 3, 4]


def test_transport_streams_are_videos_and_a_typescript_file_is_not(tmp_path):
    """MPEG transport streams (HLS and broadcast recordings as .ts, AVCHD camcorders' .mts/.m2ts with 192-byte
    packets) are found and decoded; a TypeScript source, which shares the .ts suffix, is counted as ignored inside a
    folder and, named explicitly, refused with what its bytes are not."""
    av = pytest.importorskip("av")
    for name, options in (("hls.ts", {}), ("cam.MTS", {}), ("cam.m2ts", {"mpegts_m2ts_mode": "1"}),
                          ("bluray.ts", {"mpegts_m2ts_mode": "1"})):  # 192-byte packets behind a .ts: sniffed
        with av.open(str(tmp_path / name), "w", format="mpegts", options=options) as c:
            stream = c.add_stream("mpeg2video", rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for level in range(0, 250, 10):  # a few frames more than five: FFmpeg probes a stream's first packets
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, np.uint8),
                                                                       format="rgb24")):
                    c.mux(packet)
            for packet in stream.encode():
                c.mux(packet)
    code = tmp_path / "app.ts"
    code.write_text("export const greet = (name: string): string => `hello ${name}`;\n")
    found = discover([tmp_path])
    assert sorted(s.name for s in found.sources) == sorted(str(tmp_path / n) for n in ("hls.ts", "cam.MTS", "cam.m2ts",
                                                                                      "bluray.ts"))
    assert found.skipped == 1
    for source in found.sources:
        assert source.media == "video" and [f.index for f in iter_frames(source)] == list(range(25)), source.name
    assert discover([code]).rejected == [(str(code), "not a video: its suffix is '.ts' but its bytes are not an MPEG "
                                                     "transport stream")]


#: Each EXIF orientation's upright view of the stored pixels (rows, columns, channels), independently of Pillow.
UPRIGHT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright_as_pillow_does(tmp_path, orientation, suffix):
    """Once: Pillow turns a TIFF by its orientation while decoding it, and a TIFF had been turned a second time."""
    from PIL import Image, ImageOps

    from fer_batch.sources import Source, read_image

    pixels = np.random.default_rng(orientation).integers(0, 256, (30, 50, 3), np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned{suffix}"
    image.save(path, exif=exif)
    np.testing.assert_array_equal(read_image(Source(path, str(path), "image")), UPRIGHT[orientation](pixels))
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = read_image(Source(path, str(path), "image"))
    assert got.shape == expected.shape == ((30, 50, 3) if orientation < 5 else (50, 30, 3))
    np.testing.assert_array_equal(got, expected)


def test_photos_decode_outside_the_warnings_lock(tmp_path, monkeypatch):
    """Only opening (header, EXIF) holds the process-wide warnings lock: workers decode their photos in parallel."""
    from PIL import Image

    from fer_batch import threads
    from fer_batch.sources import images

    path = tmp_path / "p.jpg"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(path)
    held = []
    to_rgb = images.to_rgb
    monkeypatch.setattr(images, "to_rgb", lambda im: held.append(threads._WARNINGS_LOCK.locked()) or to_rgb(im))
    assert images.read_image(Source(path, str(path), "image")).shape == (20, 20, 3)
    assert held == [False]


def test_a_source_of_unknown_media_is_refused_where_it_is_made():
    with pytest.raises(UsageError, match="Source media 'audio' is not allowed; choose one of image, video"):
        Source(Path("a.wav"), "a.wav", "audio")


def test_a_named_pipe_is_rejected_not_read(tmp_path):
    """A FIFO named like a video would block its decoder for ever: it is an error row, found while walking."""
    os.mkfifo(tmp_path / "pipe.mp4")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.jpg")
    found = discover([str(tmp_path)])
    assert [s.name for s in found.sources] == [os.path.join(str(tmp_path), "a.jpg")]
    assert found.rejected == [(os.path.join(str(tmp_path), "pipe.mp4"), "not a regular file (a named pipe)")]
    named = discover([str(tmp_path / "pipe.mp4")])
    assert not named.sources and named.rejected[0][1] == "not a regular file (a named pipe)"


def test_counting_frames_never_opens_a_named_pipe(tmp_path):
    """A FIFO named like a GIF would block the frame count for ever (waiting for a writer): it stays a photo,
    whose reading then names it, whoever asks (the walk rejects it before; the one-file library call does not)."""
    import threading

    from fer_batch.sources import frames_kind

    os.mkfifo(tmp_path / "pipe.gif")
    answer = []
    counting = threading.Thread(target=lambda: answer.append(frames_kind(tmp_path / "pipe.gif", "image")), daemon=True)
    counting.start()
    counting.join(timeout=10)
    assert answer == ["image"]
    if counting.is_alive():  # release the blocked open so the thread ends
        os.close(os.open(tmp_path / "pipe.gif", os.O_WRONLY | os.O_NONBLOCK))


def test_a_dark_16_bit_photo_stays_dark(tmp_path):
    """16-bit values are mapped from 0..65535 even when all of them are small: a nearly black 16-bit PNG (values up
    to 255 of 65535) is not read as a bright 8-bit one."""
    from fer_batch.sources import Source, read_image

    values = np.tile(np.arange(0, 256, 4, dtype="<u2"), (8, 1))
    path = tmp_path / "dark16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode == "I;16" or im.mode == "I"
    rgb = read_image(Source(path, str(path), "image"))
    assert rgb.max() <= 1  # 255 / 257


def test_a_folder_too_deep_to_reach_is_an_error_not_a_silent_gap(tmp_path):
    """Below a path of more than PATH_MAX bytes, stat fails (File name too long): the folder is named as failed."""
    deep, parts = tmp_path / "deep", []
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        os.mkdir("deep", dir_fd=fd)
        current = os.open("deep", os.O_RDONLY, dir_fd=fd)
        for _ in range(22):  # 22 x 201 bytes: past Linux's 4,096-byte PATH_MAX, made one folder at a time
            parts.append("d" * 200)
            os.mkdir(parts[-1], dir_fd=current)
            child = os.open(parts[-1], os.O_RDONLY, dir_fd=current)
            os.close(current)
            current = child
        os.close(current)
    finally:
        os.close(fd)
    found = discover([str(deep)])
    assert not found.sources
    assert any("cannot read directory (File name too long)" in reason for _, reason in found.rejected), found.rejected
    import shutil

    shutil.rmtree(deep)  # rmtree works through file descriptors, so pytest's own cleanup is spared the long path


def test_a_damaged_stretch_costs_its_frames_not_the_rest_of_the_video(tmp_path):
    """Noise over 15% of a video's bytes in its middle: the frames after the damage decode again and are analysed,
    under their own frame numbers; the file's error row names the frames lost."""
    clean = synthetic.write_face_video(tmp_path / "clean.mp4", frames=300, fps=25, size=(160, 120), seed=3)
    damaged = synthetic.write_damaged_copy(clean.path, tmp_path / "damaged.mp4", 0.4, 0.55)
    expected = [f.index for f in iter_frames(Source(clean.path, "clean.mp4", "video"), every=5)]
    assert expected == list(range(0, 300, 5))
    got = []
    with pytest.raises(InputError, match=r"^damaged\.mp4: (\d+) frames could not be decoded \((\d+)-(\d+)\); the "
                                         r"frames around them were analysed and their rows kept$") as info:
        for f in iter_frames(Source(damaged, "damaged.mp4", "video"), every=5):
            got.append(f.index)
    lost, first, last = map(int, re.search(r"(\d+) frames could not be decoded \((\d+)-(\d+)\)",
                                           str(info.value)).groups())
    assert lost == last - first + 1 and 0 < first and last < 299
    assert got == [i for i in expected if not first <= i <= last]  # every frame outside the damage, numbered as before


@pytest.mark.parametrize("sizes", [((160, 120), (320, 240)), ((320, 240), (160, 120))])
def test_a_video_whose_frame_size_changes_is_decoded_at_each_size(tmp_path, sizes):
    """Two recordings of different sizes joined into one stream. OpenCV's decoder cannot follow the change (it
    returned the last small frame again for every larger one, and the smaller ones' planes read with the larger
    strides): every frame now comes at its own size with its own pixels, numbered and timed on from the first."""
    if not synthetic.h264_available():
        pytest.skip("needs PyAV's H.264 encoder")
    path = tmp_path / "joined.ts"
    scenes = synthetic.write_joined_sizes(path, sizes, frames=20, fps=20)
    single = tmp_path / "single.ts"
    synthetic.write_joined_sizes(single, sizes[:1], frames=20, fps=20)
    assert size_changes(path) and not size_changes(single)
    frames = list(iter_frames(Source(path, "joined.ts", "video")))
    assert [f.index for f in frames] == list(range(40))
    times = [f.time_s for f in frames]
    assert times == sorted(times) and times[-1] > times[0]
    for f in frames:
        scene, i = scenes[f.index // 20], f.index % 20
        assert f.rgb.shape == (scene.size[1], scene.size[0], 3), f.index
        own = np.abs(f.rgb.astype(int) - scene.render(i)).mean()
        other = np.abs(f.rgb.astype(int) - scene.render((i + 10) % 20)).mean()
        assert own < 9 and own < other / 2, (f.index, own, other)  # its own frame, to the codec's noise
    assert [f.index for f in iter_frames(Source(path, "joined.ts", "video"), every=7)] == list(range(0, 40, 7))


@pytest.mark.parametrize("kind", ["h264", "turned", "damaged"])
@pytest.mark.parametrize("every, fps", [(1, None), (3, None), (1, 7.0)])
def test_the_pyav_path_gives_the_frames_opencvs_path_gives(tmp_path, kind, every, fps):
    """Videos whose size changes are decoded by PyAV, the rest by OpenCV: on a video both can decode, the two give
    the same frames (numbers, times, pixels, upright), for every sampling, damaged stretches included."""
    from fer_batch.sources.video import _iter_pyav

    if not synthetic.h264_available():
        pytest.skip("needs PyAV's H.264 encoder")
    clip = synthetic.write_face_video(tmp_path / "clip.mp4", frames=60, fps=20, size=(160, 120), codec="h264")
    path = {"h264": lambda: clip.path,
            "turned": lambda: synthetic.write_rotated_copy(clip.path, tmp_path / "turned.mp4", 1),
            "damaged": lambda: synthetic.write_damaged_copy(
                synthetic.write_face_video(tmp_path / "m.mp4", frames=60, fps=20, size=(160, 120)).path,
                tmp_path / "damaged.mp4", 0.4, 0.5)}[kind]()
    source = Source(path, path.name, "video")

    def frames(decode):
        got, error = [], None
        try:
            got.extend(decode())
        except InputError as exc:
            error = str(exc)
        return got, error

    (ours, our_error), (theirs, their_error) = (
        frames(lambda: iter_frames(source, every=every, fps=fps, bgr=True)),
        frames(lambda: _iter_pyav(source, every, fps, 10**8, bgr=True)))
    assert our_error == their_error and (our_error is not None) == (kind == "damaged")
    assert [f.index for f in ours] == [f.index for f in theirs] and len(ours) >= 60 // 3 // every
    for a, b in zip(ours, theirs):
        assert abs(a.time_s - b.time_s) < 1e-3 and a.bgr.shape == b.bgr.shape and b.bgr.flags.c_contiguous
        assert np.abs(a.bgr.astype(int) - b.bgr).mean() < 1.0, a.index


def test_thumbnails_after_a_damaged_stretch_are_of_the_frames_the_analysis_numbered(tmp_path):
    """The report's thumbnails decode a video again: a frame that fails to decode counts as a frame there too, as
    in the analysis, so those after a damaged stretch are their own (they came one frame late per frame lost, or,
    after an MPEG-4 gap, not at all)."""
    from fer_batch.thumbs import _video_frames

    clean = synthetic.write_face_video(tmp_path / "clean.mp4", frames=100, fps=20, size=(160, 120), seed=3)
    damaged = synthetic.write_damaged_copy(clean.path, tmp_path / "damaged.mp4", 0.4, 0.5)
    analysed = {}
    with pytest.raises(InputError, match="could not be decoded"):
        for f in iter_frames(Source(damaged, "damaged.mp4", "video"), bgr=True):
            analysed[f.index] = f.bgr.astype(int)
    assert len(analysed) < 100 and max(analysed) == 99  # frames were lost, and the end was reached
    thumbs = dict(_video_frames(damaged, {i: None for i in analysed}))
    assert sorted(thumbs) == sorted(analysed)
    for i, img in thumbs.items():
        assert np.array_equal(img, analysed[i]), i


def test_a_damaged_first_packet_costs_its_frame_not_the_annotated_copy(tmp_path):
    """The display-rotation tag is read from the first frame that decodes: a damaged first packet made reading it
    fail, and with it the whole annotated copy (and the analysis of a video whose size changes)."""
    av = pytest.importorskip("av")
    from fer_batch.annotate import annotate_video
    from fer_batch.sources import display_turns

    clip = synthetic.write_face_video(tmp_path / "clip.mp4", frames=30, fps=20, size=(160, 120))  # MPEG-4 Part 2
    data = bytearray(clip.path.read_bytes())
    with av.open(str(clip.path)) as c:
        first = next(p for p in c.demux(video=0) if p.size)
    data[first.pos + 8:first.pos + first.size] = np.random.default_rng(1).integers(0, 256, first.size - 8,
                                                                                    np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with av.open(str(damaged)) as c, pytest.raises(av.error.InvalidDataError):
        next(c.decode(video=0))  # as the old code read the tag
    assert display_turns(damaged) == 0
    analysed = []
    with pytest.raises(InputError, match=r"1 frame could not be decoded \(0\)"):
        analysed.extend(f.index for f in iter_frames(Source(damaged, "damaged.mp4", "video")))
    assert analysed == list(range(1, 30))
    facts = annotate_video(damaged, tmp_path / "copy.mp4", [])
    assert facts["frames"] == 30 and (tmp_path / "copy.mp4").exists()


def test_a_transport_stream_cut_mid_packet_is_still_a_video(tmp_path):
    """A capture begun mid-packet starts with a packet's tail: FFmpeg finds the next packet, and so does the sniff
    (it had looked for the sync byte at the file's first byte only, and the file was ignored)."""
    av = pytest.importorskip("av")
    whole = tmp_path / "whole.bin"
    with av.open(str(whole), "w", format="mpegts") as c:
        stream = c.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for level in range(0, 250, 10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, np.uint8),
                                                                   format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    (tmp_path / "capture.ts").write_bytes(whole.read_bytes()[100:])
    whole.unlink()
    found = discover([tmp_path])
    assert [s.name for s in found.sources] == [str(tmp_path / "capture.ts")] and found.skipped == 0
    assert len(list(iter_frames(found.sources[0]))) >= 20


def test_every_multi_frame_image_is_a_video_decoded_frame_by_frame_at_its_own_times(tmp_path):
    """An animated GIF, PNG or WebP, or a TIFF of several pages, is analysed as a video: every frame, at the time the
    durations before it add up to (a TIFF's pages have none). One frame, or bytes no decoder takes, is a photo as
    before (decoding it says what is wrong); the bytes decide, not the suffix."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
    frames = [np.full((24, 32, 3), c, np.uint8) for c in colours]
    durations = [100, 200, 50, 300]
    for name in ("walk.gif", "walk.png", "walk.webp", "pages.tif"):
        synthetic.save_animation(tmp_path / name, frames, durations)
    synthetic.save_animation(tmp_path / "still.gif", frames[:1], durations[:1])
    _img(tmp_path / "still.png")
    (tmp_path / "broken.gif").write_bytes(b"GIF89a")
    shutil.copy(tmp_path / "walk.gif", tmp_path / "gif named.png")
    shutil.copy(tmp_path / "walk.webp", tmp_path / "webp named.gif")
    found = discover([tmp_path])
    media = {Path(s.name).name: s.media for s in found.sources}
    assert media == {"broken.gif": "image", "gif named.png": "video", "pages.tif": "video", "still.gif": "image",
                     "still.png": "image", "walk.gif": "video", "walk.png": "video", "walk.webp": "video",
                     "webp named.gif": "video"}
    for source in found.sources:
        if source.media != "video":
            continue
        decoded = list(iter_frames(source))
        name = Path(source.name).name
        assert [f.index for f in decoded] == [0, 1, 2, 3], name
        means = [tuple(np.rint(f.rgb.reshape(-1, 3).mean(axis=0)).astype(int)) for f in decoded]
        assert all(np.abs(np.subtract(m, c)).max() <= 3 for m, c in zip(means, colours)), (name, means)
        times = [f.time_s for f in decoded]
        assert times == ([None] * 4 if name == "pages.tif" else pytest.approx([0.0, 0.1, 0.3, 0.35])), name
        assert [f.index for f in iter_frames(source, every=2)] == [0, 2]
        # --fps 5: the first frame at or after every 0.2 s of the animation's own time (0, 0.3; a TIFF's pages count
        # 1/30 s each)
        assert [f.index for f in iter_frames(source, fps=5)] == ([0] if name == "pages.tif" else [0, 2]), name
        picked = list(iter_frames(source, every=3, bgr=True))
        assert [f.index for f in picked] == [0, 3] and picked[1].rgb is None
        np.testing.assert_allclose(picked[1].bgr.reshape(-1, 3).mean(axis=0), colours[3][::-1], atol=3)
    with pytest.raises(InputError, match="broken.gif: corrupt or truncated image|broken.gif: not a readable image"):
        read_image(next(s for s in found.sources if s.name.endswith("broken.gif")))


@pytest.mark.parametrize("name", ["fast.gif", "fast.png", "fast.webp"])
def test_a_frame_of_10_ms_or_less_is_shown_for_a_tenth_of_a_second(tmp_path, name):
    """As browsers play them: a 0 ms frame does not share its time with the next one."""
    frames = [np.full((8, 8, 3), c, np.uint8) for c in (0, 90, 180, 240)]
    path = synthetic.save_animation(tmp_path / name, frames, [0, 10, 40, 20])
    source = discover([path]).sources[0]
    assert [f.time_s for f in iter_frames(source)] == pytest.approx([0.0, 0.1, 0.2, 0.24])


def test_an_animation_cut_short_keeps_its_frames_and_names_the_one_that_failed(tmp_path):
    frames = [np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8) for i in range(4)]
    whole = synthetic.save_animation(tmp_path / "whole.gif", frames, [100] * 4).read_bytes()
    (tmp_path / "cut.gif").write_bytes(whole[:int(len(whole) * 0.6)])
    source = Source(tmp_path / "cut.gif", "cut.gif", "video")
    got = []
    with pytest.raises(InputError, match=r"cut.gif: frame \d could not be decoded .*; the frames before it were "
                                         "analysed and their rows kept"):
        for frame in iter_frames(source):
            got.append(frame.index)
    assert got and got == list(range(len(got)))


def test_an_apngs_default_image_is_not_a_frame_and_later_frames_are_timed(tmp_path):
    """Players animating an APNG never show its default image (a poster for viewers without APNG): left out, and
    the frames after it keep their durations."""
    frames = [Image.new("RGB", (16, 12), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    # Pillow gives the durations to the animation's frames in order (the default image has none)
    frames[0].save(tmp_path / "poster.png", save_all=True, append_images=frames[1:], default_image=True,
                   duration=[500, 250, 100])
    source = discover([tmp_path / "poster.png"]).sources[0]
    decoded = list(iter_frames(source))
    assert source.media == "video" and [f.time_s for f in decoded] == pytest.approx([0.0, 0.5])
    assert [tuple(f.rgb[0, 0]) for f in decoded] == [(0, 250, 0), (0, 0, 250)]


def test_an_apng_of_one_frame_after_its_poster_is_that_frame_not_the_poster(tmp_path):
    """A player shows the animation's one frame; a viewer without APNG the poster. The fast look at the chunks and
    PIL count the same frames (one too few made the file a photo of its poster)."""
    poster, frame = Image.new("RGB", (16, 12), (250, 0, 0)), Image.new("RGB", (16, 12), (0, 250, 0))
    poster.save(tmp_path / "one.png", save_all=True, append_images=[frame], default_image=True, duration=[300])
    with Image.open(tmp_path / "one.png") as im:
        assert im.n_frames == 2 and im.default_image
    source = discover([tmp_path / "one.png"]).sources[0]
    decoded = list(iter_frames(source))
    assert source.media == "video" and [(f.index, f.time_s) for f in decoded] == [(0, 0.0)]
    assert tuple(decoded[0].rgb[0, 0]) == (0, 250, 0)


def test_each_page_of_a_tiff_is_turned_by_its_own_orientation(tmp_path):
    """A TIFF's pages each carry their own tags: a scan of a landscape page then a portrait one."""
    from PIL import TiffImagePlugin

    pages = [np.random.default_rng(i).integers(0, 256, (6, 10, 3), np.uint8) for i in range(3)]
    with TiffImagePlugin.AppendingTiffWriter(tmp_path / "pages.tif", True) as tiff:
        for page, orientation in zip(pages, (3, 6, 1)):
            Image.fromarray(page).save(tiff, format="TIFF", tiffinfo={0x0112: orientation})
            tiff.newFrame()
    decoded = list(iter_frames(discover([tmp_path / "pages.tif"]).sources[0]))
    assert [f.rgb.shape for f in decoded] == [(6, 10, 3), (10, 6, 3), (6, 10, 3)]
    for frame, page, orientation in zip(decoded, pages, (3, 6, 1)):
        np.testing.assert_array_equal(frame.rgb, UPRIGHT[orientation](page))


def test_a_later_page_over_the_pixel_limit_is_refused_after_the_pages_before_it(tmp_path):
    pages = [Image.new("RGB", (10, 10), "red"), Image.new("RGB", (400, 400), "blue")]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    source = discover([tmp_path / "pages.tif"]).sources[0]
    got = []
    with pytest.raises(InputError, match=r"pages.tif: frame 1 is 400x400, above the 0-megapixel limit; the frames "
                                         "before it were analysed"):
        for frame in iter_frames(source, max_pixels=1000):
            got.append(frame.index)
    assert got == [0]


def test_a_tree_deeper_than_the_walk_goes_is_named_not_a_crash(tmp_path):
    """1,200 nested folders ended the run with a RecursionError before any file was analysed (300 here: the
    limit is what is tested)."""
    from fer_batch.sources import MAX_WALK_DEPTH

    deep = tmp_path / "t"
    folder = deep
    folder.mkdir()
    for _ in range(MAX_WALK_DEPTH + 100):
        folder = folder / "d"
        folder.mkdir()
    _img(deep / "d" / "d" / "shallow.jpg")
    _img(folder / "deep.jpg")
    found = discover([deep])
    assert [Path(s.name).name for s in found.sources] == ["shallow.jpg"]
    (name, reason), = found.rejected
    assert name == os.path.join(str(deep), *["d"] * (MAX_WALK_DEPTH + 1))
    assert reason == f"more than {MAX_WALK_DEPTH} folders below the folder given: not walked"
