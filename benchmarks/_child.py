"""The measured side of analyze_speed.py: one measurement per process, so peak RSS belongs to it alone.

    python benchmarks/_child.py floor VIDEO|PHOTO_DIR
    python benchmarks/_child.py ours VIDEO|PHOTO_DIR --out DIR [--workers N] [--detect-size PX] [--batch-size N]
                                                 [--detector NAME]

``floor``: OpenCV reading every frame of a video (``cv2.VideoCapture.read``: decode + conversion to BGR), or
``cv2.imread`` of every photo in a folder. ``ours``: :func:`fer_batch.batch.run_batch` -- exactly what
``fer-batch analyze PATH --out DIR/results.csv --quiet`` runs -- on every frame. Prints one JSON line: frames,
seconds (the work only: imports and model loading are ``setup_s``) and fps. The parent reads peak RSS from the
kernel when this process ends (``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def floor(path: Path) -> dict:
    t0 = time.perf_counter()
    import cv2

    setup = time.perf_counter() - t0
    n = 0
    t = time.perf_counter()
    if path.is_dir():
        for p in photos_in(path):
            if cv2.imread(str(p)) is not None:
                n += 1
    else:
        cap = cv2.VideoCapture(str(path))
        while True:
            ok, _ = cap.read()
            if not ok:
                break
            n += 1
        cap.release()
    seconds = time.perf_counter() - t
    return {"frames": n, "seconds": seconds, "fps": n / seconds, "setup_s": setup}


class _Count:
    """A run_batch progress object that only counts what the finished sources report."""

    def __init__(self):
        self.analysed = self.faces = self.failed = 0

    def start(self, total_sources, already_done): ...
    def source_start(self, event): ...
    def frames(self, n): ...
    def close(self): ...

    def source_done(self, done):
        self.analysed += done.frames
        self.faces += done.faces
        self.failed += bool(done.error)


def ours(path: Path, out: Path, workers: int, detect_size: int | None, batch_size: int | None,
         detector: str | None = None) -> dict:
    t0 = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    sys.path.insert(0, str(REPO))
    from fer_batch.batch import run_batch
    from fer_batch.classify import Classifier
    from fer_batch.cli._native import native_stderr, quiet_detector_factory
    from fer_batch.config import AnalyzeConfig, RunConfig

    options = {"workers": workers}
    if detect_size:
        options["detect_max_side"] = detect_size
    if batch_size:
        options["batch_size"] = batch_size
    if detector:
        options["detector"] = detector
    config = RunConfig(paths=(str(path),), out=out / "results.csv", overwrite=True,
                       analyze=AnalyzeConfig(**options))
    with native_stderr(None):
        classifier = Classifier(config.analyze.model)
    setup = time.perf_counter() - t0
    count = _Count()
    t = time.perf_counter()
    report = run_batch(config, progress=count, classifier=classifier,
                       detector_factory=quiet_detector_factory(None))
    seconds = time.perf_counter() - t
    return {"frames": count.analysed, "faces": count.faces, "rows": report.rows, "failed": report.failed,
            "seconds": seconds, "fps": count.analysed / seconds, "setup_s": setup}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("floor", "ours"))
    ap.add_argument("path", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--detect-size", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--detector")
    args = ap.parse_args()
    if args.what == "floor":
        result = floor(args.path)
    else:
        result = ours(args.path, args.out, args.workers, args.detect_size, args.batch_size, args.detector)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
