"""Shared fixtures: synthetic media generated into pytest's temporary directories, and the shared dataset.

All media come from :mod:`synthetic_media` in this folder (the Grace Hopper photo bundled with matplotlib). Costly
ones are session-scoped and shared between tests, so treat their files as read-only; copy one into ``tmp_path``
before changing it. Cheap ones (the zero-byte file) are made per test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from synthetic_media import FACE_VIDEO  # the small test video's parameters

SHARED_FER2013 = Path(__file__).parents[1].parent / "shared" / "data" / "fer2013.csv.gz"


@pytest.fixture(scope="session", autouse=True)
def _own_cache_folder(tmp_path_factory):
    """TFLite conversions (fer_batch.tflite_cache) go to a folder of this session, not the user's cache: tests
    neither depend on nor add to what earlier runs left there. Subprocesses inherit it."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A session-wide directory holding the generated media below."""
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="session")
def synthetic_photos(synthetic_dir):
    """{"one_face" | "three_faces" | "no_face": (path to a JPEG, the synthetic.Photo with its face boxes)}."""
    import synthetic_media as synthetic

    photos = {
        "one_face": synthetic.photo_faces(1, seed=0),
        "three_faces": synthetic.photo_faces(3, seed=0),
        "no_face": synthetic.photo_no_face(seed=3),
    }
    out = {}
    for name, photo in photos.items():
        out[name] = (synthetic.save_image(synthetic_dir / f"{name}.jpg", photo.rgb, quality=92), photo)
    return out


@pytest.fixture(scope="session")
def one_face_photo(synthetic_photos) -> Path:
    """A 480x600 JPEG portrait with one frontal face."""
    return synthetic_photos["one_face"][0]


@pytest.fixture(scope="session")
def multi_face_photo(synthetic_photos) -> Path:
    """A 960x600 JPEG with three faces of different sizes (boxes: ``synthetic_photos["three_faces"][1]``)."""
    return synthetic_photos["three_faces"][0]


@pytest.fixture(scope="session")
def no_face_photo(synthetic_photos) -> Path:
    """A 640x480 JPEG of background only."""
    return synthetic_photos["no_face"][0]


@pytest.fixture(scope="session")
def exif_rotated_photo(synthetic_dir, synthetic_photos) -> Path:
    """The one-face portrait stored turned 90 degrees with EXIF Orientation 6 (upright only if EXIF is honoured)."""
    import synthetic_media as synthetic

    photo = synthetic_photos["one_face"][1]
    return synthetic.save_exif_rotated(synthetic_dir / "exif_rotated.jpg", photo.rgb, orientation=6)


@pytest.fixture(scope="session")
def face_video(synthetic_dir):
    """The small test video (``FACE_VIDEO``) as a ``synthetic.VideoInfo``: ``.path``, ``.frames``, ``.fps``,
    ``.size``, and ``.intervals(state)`` / ``.face_states(i)`` for where the face is in each frame."""
    import synthetic_media as synthetic

    return synthetic.write_face_video(synthetic_dir / "face_video.mp4", **FACE_VIDEO)


@pytest.fixture(scope="session")
def face_video_h264(synthetic_dir):
    """The same scene as ``face_video`` encoded as H.264 through PyAV; skips when PyAV/libx264 is absent."""
    import synthetic_media as synthetic

    if not synthetic.h264_available():
        pytest.skip("H.264 needs the optional PyAV package (pip install av)")
    params = dict(FACE_VIDEO, codec="h264")
    return synthetic.write_face_video(synthetic_dir / "face_video_h264.mp4", **params)


@pytest.fixture(scope="session")
def truncated_video(synthetic_dir, face_video) -> Path:
    """The first half of ``face_video``'s bytes: the header announces every frame, only the early ones decode."""
    import synthetic_media as synthetic

    return synthetic.write_truncated_copy(face_video.path, synthetic_dir / "truncated.mp4", fraction=0.5)


@pytest.fixture(scope="session")
def corrupt_video(synthetic_dir, face_video) -> Path:
    """``face_video`` with its header intact and 90% of its media data replaced by random bytes."""
    import synthetic_media as synthetic

    return synthetic.write_corrupt_video(face_video.path, synthetic_dir / "corrupt.mp4", keep=0.1)


@pytest.fixture
def zero_byte_file(tmp_path) -> Path:
    """An empty file named ``empty.jpg``."""
    import synthetic_media as synthetic

    return synthetic.write_zero_byte(tmp_path / "empty.jpg")


@pytest.fixture(scope="session")
def mp_face_detector():
    """MediaPipe's short-range BlazeFace from the wheel, called directly: ``detect(rgb) -> [(x0, y0, x1, y1, score)]``.

    An independent judge of what the synthetic media contain, deliberately not going through fer_batch's own
    detection code. Skips when mediapipe is not installed.
    """
    pytest.importorskip("mediapipe")
    import importlib.util

    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    model = os.path.join(os.path.dirname(importlib.util.find_spec("mediapipe").origin),
                         "modules", "face_detection", "face_detection_short_range.tflite")
    if not os.path.exists(model):
        pytest.skip(f"mediapipe wheel lacks {model}")
    detector = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=model), min_detection_confidence=0.5))

    def detect(rgb):
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb, dtype=np.uint8))
        found = []
        for d in detector.detect(image).detections:
            b = d.bounding_box
            found.append((b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height,
                          float(d.categories[0].score)))
        return found

    yield detect
    detector.close()


@pytest.fixture
def shared_fer2013() -> Path:
    """Path of the shared FER-2013 CSV (``../shared/data/fer2013.csv.gz``); skips the test when it is absent."""
    if not SHARED_FER2013.exists():
        pytest.skip(f"shared dataset not found at {SHARED_FER2013}")
    return SHARED_FER2013


@pytest.fixture(scope="module")
def detectors():
    """One BlazeFace detector per model ("short", "full"), at the default max_side, shared by a module's tests."""
    from fer_batch.detect import DETECTORS, FaceDetector

    made = {m: FaceDetector(m) for m in DETECTORS}
    yield made
    for d in made.values():
        d.close()
