"""The synthetic media say what they contain: checked by reading them back with OpenCV/PIL and, where it matters,
by running MediaPipe's face detector on them directly."""

from __future__ import annotations

import shutil
import tracemalloc

import numpy as np
import pytest

import synthetic_media as synthetic

cv2 = pytest.importorskip("cv2")


def read_all_frames(path, keep=None):
    """(number of decodable frames, {index: RGB frame} for indices in ``keep``), header frame count."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"OpenCV cannot open {path}"
    header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    kept, n = {}, 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if keep is not None and n in keep:
            kept[n] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n += 1
    cap.release()
    return n, kept, header


def inside(point, box, slack=0.0):
    x, y = point
    return box[0] - slack <= x <= box[2] + slack and box[1] - slack <= y <= box[3] + slack


def centre(box):
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


# ---------------------------------------------------------------------------------------------------- the face


def test_grace_hopper_rgb_is_the_bundled_photo_as_rgb():
    rgb = synthetic.grace_hopper_rgb()
    assert rgb.shape == (600, 512, 3) and rgb.dtype == np.uint8
    # The backdrop in the top-right corner is sky blue: blue channel clearly above red (catches a BGR swap).
    corner = rgb[20:80, 440:500].reshape(-1, 3).mean(axis=0)
    assert corner[2] > corner[0] + 40
    rgb[:] = 0  # a copy: scribbling on it must not change the next call
    assert synthetic.grace_hopper_rgb().any()


def test_sprite_alpha_is_soft_and_zero_at_every_border():
    sprite = synthetic.face_sprite()
    alpha = sprite.alpha
    assert alpha.shape == sprite.rgba.shape[:2]
    for edge in (alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]):
        assert edge.max() == 0.0
    fx, fy, fw, fh = sprite.face_box
    # The face itself is opaque (the box's corners are neck and backdrop, which the head outline leaves out).
    assert alpha[int(fy + 0.2 * fh):int(fy + 0.8 * fh), int(fx + 0.2 * fw):int(fx + 0.8 * fw)].min() > 0.99
    # Soft: a good share of the mask is neither transparent nor opaque, and neighbours never jump by much.
    partial = ((alpha > 0.02) & (alpha < 0.98)).mean()
    assert partial > 0.05
    assert np.abs(np.diff(alpha, axis=0)).max() < 0.1 and np.abs(np.diff(alpha, axis=1)).max() < 0.1


def test_placement_geometry():
    p = synthetic.Placement(100, 80, 50)
    assert p.face_box() == pytest.approx((75, 55, 125, 105))
    squeezed = synthetic.Placement(100, 80, 50, squeeze=0.6).face_box()
    assert squeezed[2] - squeezed[0] == pytest.approx(30)
    assert squeezed[3] - squeezed[1] == pytest.approx(50)
    turned = synthetic.Placement(100, 80, 50, angle=90, squeeze=0.6).face_box()
    assert turned[2] - turned[0] == pytest.approx(50) and turned[3] - turned[1] == pytest.approx(30)
    tilted = synthetic.Placement(100, 80, 50, angle=45).face_box()
    assert tilted[2] - tilted[0] == pytest.approx(50 * np.sqrt(2))


def test_composite_blends_without_a_rectangle_and_ignores_faces_out_of_frame():
    frame = np.full((300, 400, 3), 128, np.uint8)
    assert np.array_equal(synthetic.composite(frame, [synthetic.Placement(-500, 150, 100), None]), frame)
    p = synthetic.Placement(200, 130, 100)
    out = synthetic.composite(frame, [p])
    assert out is not frame and (frame == 128).all()  # the input is left alone
    changed = np.abs(out.astype(int) - frame.astype(int)).max(axis=2) > 2
    x0, y0, x1, y1 = (int(round(v)) for v in p.face_box())
    assert changed[y0 + 10:y1 - 10, x0 + 10:x1 - 10].mean() > 0.9
    # The sprite rectangle's own corners are fully transparent: no hard rectangle around the face.
    corners = p.sprite_corners().round().astype(int)
    for cx, cy in corners:
        if 0 <= cx < 400 and 0 <= cy < 300:
            assert not changed[cy, cx]
    assert synthetic.composite(frame, [p], inplace=True) is frame


def test_background_is_textured_deterministic_and_any_size():
    a = synthetic.make_background((333, 111), seed=5)
    assert a.shape == (111, 333, 3) and a.dtype == np.uint8
    assert a.std() > 10 and len(np.unique(a.reshape(-1, 3), axis=0)) > 1000
    assert np.array_equal(a, synthetic.make_background((333, 111), seed=5))
    assert not np.array_equal(a, synthetic.make_background((333, 111), seed=6))
    # No large flat areas: the fine texture and noise reach every 16x16 tile.
    big = synthetic.make_background((640, 360), seed=0).astype(np.float32)
    tiles = big[:352, :640].reshape(22, 16, 40, 16, 3).std(axis=(1, 3)).max(axis=2)
    assert tiles.min() > 1.0


# ---------------------------------------------------------------------------------------------------- photos


def test_photo_face_boxes_are_inside_and_do_not_overlap():
    photo = synthetic.photo_faces(3, seed=0)
    assert photo.size == (960, 600) and len(photo.faces) == 3
    sizes = sorted(f.box[2] - f.box[0] for f in photo.faces)
    assert sizes[0] < 0.8 * sizes[-1]  # different sizes
    for f in photo.faces:
        assert f.state == "in"
    boxes = [f.box for f in photo.faces]
    for i in range(3):
        for j in range(i + 1, 3):
            a, b = boxes[i], boxes[j]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_photos_contain_the_faces_they_claim(synthetic_photos, mp_face_detector):
    from PIL import Image

    for name, want in (("one_face", 1), ("three_faces", 3), ("no_face", 0)):
        path, photo = synthetic_photos[name]
        with Image.open(path) as im:
            found = mp_face_detector(np.asarray(im.convert("RGB")))
        assert len(found) == want, name
        # Each detection is centred on one of the faces we put there.
        for det in found:
            assert any(inside(centre(det), f.box, slack=10) for f in photo.faces), (name, det)


@pytest.mark.parametrize("variant,suffix,mode", [
    ("rgb", ".png", "RGB"), ("gray", ".jpg", "L"), ("rgba", ".png", "RGBA"), ("gray16", ".png", "I;16"),
    ("palette", ".png", "P"), ("rgb16", ".png", None),
])
def test_save_image_variants(tmp_path, variant, suffix, mode):
    from PIL import Image

    rgb = synthetic.photo_faces(1, (120, 150), seed=1).rgb
    path = synthetic.save_image(tmp_path / f"img{suffix}", rgb, variant=variant)
    if mode is None:  # 16-bit RGB: PIL cannot represent it, OpenCV reads it back exactly
        back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert back.dtype == np.uint16 and back.shape == (150, 120, 3)
        assert np.array_equal(back[:, :, ::-1], rgb.astype(np.uint16) * 257)
        return
    with Image.open(path) as im:
        assert im.mode == mode and im.size == (120, 150)
        arr = np.asarray(im)
        if variant == "gray16":
            assert arr.max() > 255 and np.all(arr % 257 == 0)
        if variant == "rgb":
            assert np.array_equal(arr, rgb)
        if variant == "rgba":
            assert arr[0, 0, 3] == 0 and arr[75, 60, 3] == 255


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_photo_is_upright_only_with_exif(tmp_path, orientation):
    from PIL import Image, ImageOps

    upright = synthetic.photo_faces(1, seed=2).rgb  # 480x600, not square, so a rotation shows in the size
    path = synthetic.save_exif_rotated(tmp_path / "rot.jpg", upright, orientation=orientation, quality=95)
    with Image.open(path) as im:
        assert im.getexif().get(0x0112) == orientation
        raw = np.asarray(im.convert("RGB"))
        fixed = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert fixed.shape == upright.shape
    assert np.abs(fixed.astype(int) - upright.astype(int)).mean() < 3.0
    if raw.shape == upright.shape:  # orientation 3: same size, turned upside down
        assert np.abs(raw.astype(int) - upright.astype(int)).mean() > 20
    else:
        assert raw.shape == (upright.shape[1], upright.shape[0], 3)


def test_exif_rotated_face_is_found_only_after_transpose(exif_rotated_photo, mp_face_detector):
    from PIL import Image, ImageOps

    with Image.open(exif_rotated_photo) as im:
        raw = np.asarray(im.convert("RGB"))
        fixed = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert len(mp_face_detector(fixed)) == 1
    assert raw.shape[:2] == fixed.shape[1::-1]


# ---------------------------------------------------------------------------------------------------- videos


def test_face_video_has_promised_frames_size_and_fps(face_video):
    assert face_video.frames == 48 and face_video.size == (320, 240) and face_video.fps == 12.0
    n, _, header = read_all_frames(face_video.path)
    assert n == header == 48
    cap = cv2.VideoCapture(str(face_video.path))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    cap.release()


def test_face_video_leaves_and_reenters(face_video):
    ins, outs = face_video.intervals("in"), face_video.intervals("out")
    assert len(ins) == 2 and len(outs) == 1
    assert ins[0][0] == 0 and ins[-1][1] == face_video.frames
    assert ins[0][1] <= outs[0][0] < outs[0][1] <= ins[1][0]
    assert outs[0][1] - outs[0][0] >= 8  # a real stretch away, not a blink
    # It moves, tilts, scales and turns while in view.
    ps = [face_video.face_states(i)[0].placement for i in range(*ins[0])]
    assert max(p.cx for p in ps) - min(p.cx for p in ps) > 80
    assert max(abs(p.angle) for p in ps) > 15
    assert max(p.face_px for p in ps) > 1.2 * min(p.face_px for p in ps)
    assert min(p.squeeze for p in ps) < 0.75


def test_decoded_frames_match_the_scene(face_video):
    """What the file holds is what the scene renders (up to compression), in RGB order."""
    wanted = {0, 10, 30, 47}
    _, frames, _ = read_all_frames(face_video.path, keep=wanted)
    for i in wanted:
        rendered = face_video.scene.render(i).astype(int)
        assert np.abs(frames[i].astype(int) - rendered).mean() < 8, i
        swapped = frames[i][:, :, ::-1].astype(int)
        assert np.abs(swapped - rendered).mean() > np.abs(frames[i].astype(int) - rendered).mean() + 2


def test_face_in_view_metadata_matches_detection(face_video, mp_face_detector):
    ins, outs = face_video.intervals("in"), face_video.intervals("out")
    probe_in = sorted({ins[0][0], (ins[0][0] + ins[0][1]) // 2, ins[0][1] - 1, ins[1][0], ins[1][1] - 1})
    probe_out = sorted({outs[0][0], (outs[0][0] + outs[0][1]) // 2, outs[0][1] - 1})
    _, frames, _ = read_all_frames(face_video.path, keep=set(probe_in + probe_out))
    for i in probe_in:
        found = mp_face_detector(frames[i])
        assert len(found) == 1, f"frame {i}: expected the face, found {found}"
        assert inside(centre(found[0]), face_video.face_states(i)[0].box, slack=8), i
    for i in probe_out:
        assert mp_face_detector(frames[i]) == [], f"frame {i} should show no face"


def test_multi_face_video_paths_never_cross(tmp_path, mp_face_detector):
    info = synthetic.write_face_video(tmp_path / "three.mp4", seconds=2.5, fps=8, size=(480, 270), faces=3)
    for i in range(info.frames):
        boxes = [s.box for s in info.face_states(i)]
        for a in range(3):
            for b in range(a + 1, 3):
                A, B = boxes[a], boxes[b]
                assert A[2] <= B[0] or B[2] <= A[0] or A[3] <= B[1] or B[3] <= A[1], (i, a, b)
    # Every face leaves and comes back, not all at the same moment.
    outs = [info.intervals("out", f) for f in range(3)]
    assert all(len(o) == 1 for o in outs) and len({o[0] for o in outs}) == 3
    all_in = [i for i in range(info.frames) if all(s.in_view for s in info.face_states(i))]
    _, frames, _ = read_all_frames(info.path, keep={all_in[0]})
    assert len(mp_face_detector(frames[all_in[0]])) == 3


def test_still_and_empty_scripts():
    still = synthetic.FaceScene((160, 120), 10, 5, script="still", flicker=0)
    assert all(s.in_view for i in range(5) for s in still.face_states(i))
    assert still.placements(0) == still.placements(4)
    empty = synthetic.FaceScene((160, 120), 10, 5, faces=1, script="none")
    assert empty.intervals("out") == [(0, 5)]
    custom = synthetic.FaceScene((160, 120), 10, 5, script=lambda t, f, s: synthetic.Placement(80 + 10 * t, 60, 40))
    assert custom.face_states(3)[0].placement.cx == pytest.approx(83)


def test_render_is_pure_and_background_moves():
    scene = synthetic.FaceScene((200, 150), 10, 40)
    assert np.array_equal(scene.render(7), scene.render(7))
    assert np.abs(scene.background(0).astype(int) - scene.background(30).astype(int)).mean() > 1


def test_video_writer_memory_does_not_grow_with_length(tmp_path):
    def peak(frames):
        tracemalloc.start()
        synthetic.write_face_video(tmp_path / f"m{frames}.mp4", frames=frames, fps=10, size=(320, 240))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    short, long = peak(10), peak(60)
    assert long < 1.3 * short + 1_000_000


def test_write_face_video_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        synthetic.write_face_video(tmp_path / "a.mp4", seconds=1, frames=10)
    with pytest.raises(ValueError):
        synthetic.write_face_video(tmp_path / "a.mp4", seconds=1, codec="nope")
    with pytest.raises(ValueError):
        synthetic.write_face_video(tmp_path / "a.avi", seconds=1, codec="mp4v")
    assert "mp4v" in synthetic.available_codecs()


def test_h264_video_when_pyav_is_installed(face_video_h264):
    assert face_video_h264.codec == "h264" and face_video_h264.encoder.startswith("pyav-")
    n, frames, header = read_all_frames(face_video_h264.path, keep={0})
    assert n == header == face_video_h264.frames
    cap = cv2.VideoCapture(str(face_video_h264.path))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1").lower()
    cap.release()
    assert fourcc in ("avc1", "h264")
    assert np.abs(frames[0].astype(int) - face_video_h264.scene.render(0).astype(int)).mean() < 8


# ---------------------------------------------------------------------------------------------------- bad media


def test_zero_byte_file(zero_byte_file):
    assert zero_byte_file.exists() and zero_byte_file.stat().st_size == 0


def test_random_bytes_and_text_are_not_media(tmp_path):
    from PIL import Image, UnidentifiedImageError

    noise_mp4 = synthetic.write_random_bytes(tmp_path / "noise.mp4", 5000)
    noise_jpg = synthetic.write_random_bytes(tmp_path / "noise.jpg", 5000, seed=1)
    text_png = synthetic.write_text_as(tmp_path / "notes.png")
    assert noise_mp4.stat().st_size == 5000 and noise_mp4.read_bytes() != noise_jpg.read_bytes()
    assert not cv2.VideoCapture(str(noise_mp4)).isOpened()
    for path in (noise_jpg, text_png):
        with pytest.raises(UnidentifiedImageError):
            Image.open(path)
    assert text_png.read_text().startswith("This is a text file")


def test_truncated_video_is_cut_mid_stream(face_video, truncated_video):
    size = face_video.path.stat().st_size
    assert truncated_video.stat().st_size == size // 2
    assert truncated_video.read_bytes() == face_video.path.read_bytes()[:size // 2]
    n, _, header = read_all_frames(truncated_video)
    assert header == face_video.frames  # the index at the front survived the cut ...
    assert 0 < n < face_video.frames  # ... but only frames before the cut decode


def test_corrupt_video_keeps_its_header_but_not_its_frames(face_video, corrupt_video):
    original = face_video.path.read_bytes()
    broken = corrupt_video.read_bytes()
    assert len(broken) == len(original) and broken != original
    with open(face_video.path, "rb") as f:
        boxes = synthetic._mp4_boxes(f, 0, len(original))
    mdat = next(b for b in boxes if b[0] == "mdat")
    assert broken[:mdat[1] + mdat[3]] == original[:mdat[1] + mdat[3]]  # ftyp + moov byte for byte
    n, _, header = read_all_frames(corrupt_video)
    assert header == face_video.frames and n < face_video.frames


def test_faststart_moves_the_index_forward(tmp_path):
    info = synthetic.write_face_video(tmp_path / "late.mp4", frames=12, fps=6, size=(160, 120), faststart=False)

    def kinds(path):
        with open(path, "rb") as f:
            return [b[0] for b in synthetic._mp4_boxes(f, 0, path.stat().st_size)]

    assert kinds(info.path).index("moov") > kinds(info.path).index("mdat")
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(info.path, copy)
    assert synthetic.mp4_faststart(copy) is True
    assert kinds(copy).index("moov") < kinds(copy).index("mdat")
    assert synthetic.mp4_faststart(copy) is False  # already done
    n_orig, a, _ = read_all_frames(info.path, keep={0, 11})
    n_fast, b, _ = read_all_frames(copy, keep={0, 11})
    assert n_orig == n_fast == 12
    assert all(np.array_equal(a[i], b[i]) for i in (0, 11))
