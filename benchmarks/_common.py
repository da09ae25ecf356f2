"""Shared bits of the benchmarks: machine description, workload clips, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("FER_BATCH_BENCH_CACHE", Path.home() / ".cache" / "fer-batch" / "bench"))


def machine_line() -> str:
    """CPU model, cores and vector extensions: every speed figure is printed beside this."""
    sys.path.insert(0, str(ROOT))
    from fer_batch.training.train import machine_info

    info = machine_info()
    return (f"machine: {info.get('cpu', platform.processor())}, {info['cpus']} cores, "
            f"vector extensions: {' '.join(info.get('vector_extensions', [])) or 'unknown'}; "
            f"python {info['python']}")


def _synthetic():
    """The media generators, which live with the tests (``tests/synthetic_media.py``), outside the package."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    import synthetic_media

    return synthetic_media


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def workload_clip(name: str, *, seconds: float, size=(1280, 720), fps: float = 30.0, faces: int = 1,
                  bitrate: int | None = 3_000_000) -> Path:
    """A generated face clip, cached under ``CACHE`` (H.264 when PyAV is installed, else MPEG-4 part 2)."""
    synthetic = _synthetic()
    CACHE.mkdir(parents=True, exist_ok=True)
    codec = "h264" if synthetic.h264_available() else "mp4v"
    rate = f"-{bitrate // 1000}k" if codec == "h264" and bitrate and bitrate != 3_000_000 else ""  # 3 Mbit/s: old names
    path = CACHE / f"{name}-{size[0]}x{size[1]}-{fps:g}fps-{seconds:g}s-{faces}f-{codec}{rate}.mp4"
    if not path.exists():
        tmp = path.with_suffix(".part.mp4")
        print(f"generating {path.name} ...", file=sys.stderr, flush=True)
        synthetic.write_face_video(tmp, seconds=seconds, fps=fps, size=size, faces=faces, codec=codec,
                                   bitrate=bitrate if codec == "h264" else None)
        tmp.rename(path)
    return path


def probe_faces() -> "np.ndarray":
    """The generated faces that int8 is judged on (``tests/synthetic_media.probe_faces``: faces ``analyze`` cut
    from a generated clip and photo, and off-centre crops), (N, 48, 48, 1) uint8, cached under ``CACHE``."""
    import numpy as np

    path = CACHE / "probe_faces.npy"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print("generating the probe faces ...", file=sys.stderr, flush=True)
        faces = _synthetic().probe_faces(CACHE / "probe")
        np.save(path.with_suffix(".part.npy"), faces)
        path.with_suffix(".part.npy").rename(path)
    return np.load(path)


PHOTO_SIZES = ((1024, 768), (768, 1024), (1280, 960), (1600, 1200), (800, 600))


def workload_photos(count: int) -> Path:
    """A folder of ``count`` generated JPEG photos (quality 90), cached under ``CACHE``.

    Sizes cycle through :data:`PHOTO_SIZES` (0.5 to 1.9 megapixels, what a web gallery or a downscaled phone
    export holds); photo i has ``i % 4`` faces (a quarter of them none), on its own background.
    """
    synthetic = _synthetic()
    folder = CACHE / f"photos-{count}"
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    print(f"generating {count} photos in {folder} ...", file=sys.stderr, flush=True)
    for i in range(count):
        path = folder / f"photo-{i:05d}.jpg"
        if path.exists():
            continue
        photo = synthetic.photo_faces(i % 4, PHOTO_SIZES[i % len(PHOTO_SIZES)], seed=i)
        tmp = folder / f".part-{i:05d}.jpg"  # hidden: never discovered as a photo
        synthetic.save_image(tmp, photo.rgb, quality=90)
        tmp.rename(path)
    done.touch()
    return folder


def decode_fps(path: Path, limit: int | None = None) -> tuple[float, int]:
    """OpenCV reading every frame (decode + colour conversion): the floor any analysis is compared with."""
    import time

    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    t = time.perf_counter()
    while limit is None or n < limit:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    dt = time.perf_counter() - t
    cap.release()
    return n / dt, n
