"""Classifier throughput against video decoding, side by side in one run.

The `fast` model's floor: it must classify faces (in batches, test-time augmentation included) at least as fast as
OpenCV decodes the frames of a 1280x720 H.264 clip at an ordinary bitrate, on the same machine.

    python benchmarks/classify_speed.py [--models fast accurate PATH.keras] [--runtimes keras tflite]
                                        [--seconds 20] [--batch 256]

Each model is timed in each classifier runtime (`fer-batch analyze --runtime`): keras (TensorFlow) and tflite
(converted at load, XNNPACK), which `auto` picks on CPU-only hosts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import decode_fps, machine_line, workload_clip  # noqa: E402


def faces_per_second(model, batch: int, seconds: float = 6.0) -> float:
    import numpy as np

    x = np.random.default_rng(0).integers(0, 256, (batch, 48, 48, 1), dtype=np.uint8)
    for _ in range(3):
        model.predict(x)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        model.predict(x)
        n += batch
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["fast", "accurate"])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the 720p clip to decode")
    ap.add_argument("--bitrate", type=int, default=3_000_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--runtimes", nargs="+", default=["keras", "tflite"], choices=["keras", "tflite"])
    args = ap.parse_args()

    print(machine_line())
    clip = workload_clip("decode", seconds=args.seconds, bitrate=args.bitrate)
    from fer_batch.classify import Classifier

    rows = []
    dfps, frames = decode_fps(clip)
    print(f"decode floor: OpenCV read {frames} frames of {clip.name} at {dfps:.0f} frames/s")
    for name in args.models:
        for runtime in args.runtimes:
            try:
                clf = Classifier(name, batch_size=args.batch, runtime=runtime)
            except Exception as exc:  # a missing packaged model is reported, not fatal
                print(f"{name} ({runtime}): skipped ({str(exc).splitlines()[0][:200]} ...)")
                continue
            fps = faces_per_second(clf, args.batch)
            rows.append((f"{name} ({runtime})", clf.model.count_params(), fps, fps / dfps))
    print(f"{'model':<18}{'params':>10}{'faces/s':>10}{'x decode':>10}")
    for name, params, fps, ratio in rows:
        print(f"{name:<18}{params / 1e6:>9.2f}M{fps:>10.0f}{ratio:>10.2f}")


if __name__ == "__main__":
    main()
