"""Time the `fer` package (the peer) on one video or a folder of photos; run with the peer venv's python.

    ~/.cache/fer-batch/fer-peer-venv/bin/python benchmarks/peer_fer.py VIDEO [--max-frames N]
    ~/.cache/fer-batch/fer-peer-venv/bin/python benchmarks/peer_fer.py PHOTO_DIR [--max-photos N]

Videos go through ``fer.classes.Video(path).analyze(FER(mtcnn=False), ...)`` on every frame (frequency 1), with
every file output (frames, annotated video, zip, display) switched off. ``--max-frames`` passes ``max_results``
to stop early, so a slow peer can be timed on the start of a long clip. Photos go through
``FER(mtcnn=False).detect_emotions(cv2.imread(path))`` one by one (what fer offers for stills). FER() is the
package's default: Haar-cascade detection, its quantised TFLite emotion model.

Prints one JSON line: frames (or photos), seconds (analysis only, after imports and model loading), fps,
setup_s (imports + model loading) and peak_rss_mb of this process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path")
    ap.add_argument("--max-frames", type=int, default=None, help="stop after N frames (fer's max_results)")
    ap.add_argument("--max-photos", type=int, default=None, help="only the first N photos of a folder")
    args = ap.parse_args()

    t_setup = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import cv2
    from fer.classes import Video
    from fer.fer import FER

    detector = FER(mtcnn=False)
    path = Path(args.path)
    result: dict = {"peer": "fer", "path": str(path)}
    if path.is_dir():
        photos = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                        and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if args.max_photos:
            photos = photos[:args.max_photos]
        detector.detect_emotions(cv2.imread(str(photos[0])))  # warm-up, as Video.analyze's first frame would be
        setup = time.perf_counter() - t_setup
        t = time.perf_counter()
        faces = 0
        for p in photos:
            faces += len(detector.detect_emotions(cv2.imread(str(p))))
        seconds = time.perf_counter() - t
        result.update(frames=len(photos), faces=faces)
    else:
        with tempfile.TemporaryDirectory() as outdir:
            cwd = os.getcwd()
            os.chdir(outdir)  # fer writes nothing with these options; if it did, it would land here
            try:
                video = Video(str(path), outdir=outdir)
                setup = time.perf_counter() - t_setup
                t = time.perf_counter()
                # tqdm's bar goes to stderr; keep it off the driver's output.
                with open(os.devnull, "w") as devnull:
                    saved, sys.stderr = sys.stderr, devnull
                    try:
                        df = video.analyze(detector, display=False, output="pandas", frequency=None,
                                           max_results=args.max_frames, save_frames=False, save_video=False,
                                           annotate_frames=False, zip_images=False, include_audio=False)
                    finally:
                        sys.stderr = saved
                seconds = time.perf_counter() - t
                frames = video.frameCount
            finally:
                os.chdir(cwd)
        result.update(frames=frames, frames_with_face=int(len(df)))
    result.update(seconds=seconds, fps=result["frames"] / seconds, setup_s=setup,
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
