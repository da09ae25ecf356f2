"""Walking inputs and decoding frames: real files written to tmp_path."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_batch import synthetic
from fer_batch.errors import InputError
from fer_batch.sources import Source, discover, iter_frames, read_image


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
    with pytest.raises(InputError):
        for f in iter_frames(Source(cut, "cut.mp4", "video")):
            frames.append(f.index)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(5000))
    with pytest.raises(InputError, match="cannot open|no frame"):
        list(iter_frames(Source(garbage, "garbage.mp4", "video")))
