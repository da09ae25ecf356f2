"""Classifier throughput against video decoding, side by side in one run.

The `fast` model's floor: it must classify faces (in batches, test-time augmentation included) at least as fast as
OpenCV decodes the frames of a 1280x720 H.264 clip at an ordinary bitrate, on the same machine.

    python benchmarks/classify_speed.py [--models fast accurate PATH.keras] [--runtimes keras tflite]
                                        [--seconds 20] [--batch 256] [--faces FER2013.csv.gz | generated | noise]

Each model is timed in each classifier runtime (`fer-batch analyze --runtime`): keras (TensorFlow) and tflite
(converted at load, XNNPACK), which `auto` picks on CPU-only hosts.

The faces are real ones, because an int8 model's speed depends on them: the faces whose two likeliest emotions
int8 cannot tell apart are run again in float, one at a time (`fer_batch.unsure_faces.recheck_near_ties`; the
"float" column gives their share), and a model whose card has a ``flip_margin`` classifies the faces it is unsure
of a second time, mirrored (``fer_batch.unsure_faces.second_look``; the "mirrored" column). A FER-2013 CSV gives its
PublicTest faces; `generated` (the default) the faces `analyze` cuts from generated media
(`tests/synthetic_media.probe_faces`); `noise` uniform random pixels, which some networks find ambiguous enough
to re-run a quarter of them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import decode_fps, machine_line, probe_faces, workload_clip  # noqa: E402


def benchmark_faces(spec: str, batch: int):
    """(N, 48, 48, 1) uint8 faces, N a multiple of ``batch``, for ``--faces``."""
    import numpy as np

    if spec == "noise":
        faces = np.random.default_rng(0).integers(0, 256, (batch, 48, 48, 1), dtype=np.uint8)
    elif spec == "generated":
        faces = probe_faces()
    elif not Path(spec).is_file():
        raise SystemExit(f"--faces {spec!r}: not a file; give a FER-2013 CSV, 'generated' or 'noise'")
    else:
        from fer_batch.training.datasets import load_dataset

        val = load_dataset(spec).get("val")
        if val is None:
            raise SystemExit(f"--faces {spec!r}: no PublicTest rows")
        faces = val.x
    n = max(batch, len(faces) // batch * batch)
    return faces[np.arange(n) % len(faces)]


def faces_per_second(model, faces, batch: int, seconds: float = 6.0) -> tuple[float, float, float]:
    """(faces a second, share of the faces run again in float, share looked at twice, mirrored) over ``faces``, in
    batches of ``batch``."""
    batches = [faces[i:i + batch] for i in range(0, len(faces), batch)]
    for x in batches[:3]:
        model.predict(x)
    rechecked, flipped = model.faces_rechecked, model.faces_flipped
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        model.predict(batches[(n // batch) % len(batches)])
        n += batch
    wall = time.perf_counter() - t
    return n / wall, (model.faces_rechecked - rechecked) / n, (model.faces_flipped - flipped) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["fast", "accurate"])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the 720p clip to decode")
    ap.add_argument("--bitrate", type=int, default=3_000_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--runtimes", nargs="+", default=["keras", "tflite"], choices=["keras", "tflite"])
    ap.add_argument("--faces", default="generated", help="FER2013.csv[.gz] (its PublicTest faces), generated or noise")
    args = ap.parse_args()

    print(machine_line())
    faces = benchmark_faces(args.faces, args.batch)  # first: a wrong --faces is refused before any decoding
    clip = workload_clip("decode", seconds=args.seconds, bitrate=args.bitrate)
    from fer_batch.classify import Classifier

    rows = []
    dfps, frames = decode_fps(clip)
    print(f"decode floor: OpenCV read {frames} frames of {clip.name} at {dfps:.0f} frames/s")
    print(f"faces: {len(faces)} ({args.faces}), batches of {args.batch}")
    for name in args.models:
        for runtime in args.runtimes:
            try:
                clf = Classifier(name, batch_size=args.batch, runtime=runtime)
            except Exception as exc:  # a missing packaged model is reported, not fatal
                print(f"{name} ({runtime}): skipped ({str(exc).splitlines()[0][:200]} ...)")
                continue
            fps, rechecked, flipped = faces_per_second(clf, faces, args.batch)
            label = f"tflite, {clf.quantization or 'float'}" if clf.runtime == "tflite" else clf.runtime
            rows.append((f"{name} ({label})", clf.model.count_params(), fps, fps / dfps, rechecked, flipped))
    # float: faces int8 re-ran in float (near ties); mirrored: faces looked at twice (the card's flip_margin)
    print(f"{'model':<18}{'params':>10}{'faces/s':>10}{'x decode':>10}{'float':>8}{'mirrored':>10}")
    for name, params, fps, ratio, rechecked, flipped in rows:
        print(f"{name:<18}{params / 1e6:>9.2f}M{fps:>10.0f}{ratio:>10.2f}{100 * rechecked:>7.1f}%"
              f"{100 * flipped:>9.1f}%")


if __name__ == "__main__":
    main()
