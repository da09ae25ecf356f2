"""Local engine vs ``--engine ray`` on the same inputs, in one run; and the Ray driver's memory against the number of
sources.

  throughput  run_batch over a set of generated 720p clips (one a CPU by default, so both engines can use every
              CPU), locally with --workers = CPUs and on a local Ray instance with num_cpus = CPUs. Both are timed
              on the work only: the local classifier is loaded first, and Ray's workers are warmed by a run over a
              few photos (Ray's start-up and the workers' model loading are printed as `setup`). Ray's overhead is
              ray_seconds / local_seconds - 1. Also printed: the share of the local run's time spent in the CNN,
              and what one photo's padded network batch costs: what moving classification into batching actors
              could at most save.
  memory      the driver's resident memory (VmRSS, sampled every 20 ms) while Ray runs 1x, 4x and 16x --photos
              small one-face photos: flat when backpressure works (at most `in_flight` results are held).

    python benchmarks/ray_scaling.py                   # 2 x 60-s 720p clips; 100/400/1600 photos
    python benchmarks/ray_scaling.py --quick           # 2 x 10-s clips; 25/100/400 photos

On a shared machine figures are only comparable within one run; the README's "Running on Ray" has those measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import CACHE, _synthetic, machine_line, workload_clip  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class _Peak:
    """Samples this process's VmRSS in a thread; ``peak`` is the highest seen."""

    def __init__(self):
        self.peak = rss_mb()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._halt.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self._thread.join()


def small_photos(count: int) -> Path:
    """``count`` 320x240 one-face JPEGs (8 distinct images, repeated), cached under CACHE."""
    synthetic = _synthetic()

    folder = CACHE / f"ray-photos-{count}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    images = [synthetic.photo_faces(1, (320, 240), seed=i).rgb for i in range(8)]
    for i in range(count):
        synthetic.save_image(folder / f"p{i:05d}.jpg", images[i % len(images)], quality=90)
    (folder / ".complete").touch()
    return folder


def _config(paths, out: Path, workers: int = 1):
    from fer_batch.config import AnalyzeConfig, RunConfig

    return RunConfig(paths=tuple(str(p) for p in paths), out=out, overwrite=True,
                     analyze=AnalyzeConfig(workers=workers))


class _TimedClassifier:
    """A Classifier whose predict() time is added up (the CNN's share of a local run)."""

    def __init__(self, classifier):
        self.inner, self.seconds = classifier, 0.0
        self.batch_size = classifier.batch_size

    def predict(self, crops, offset=0):
        t = time.perf_counter()
        try:
            return self.inner.predict(crops, offset=offset)
        finally:
            self.seconds += time.perf_counter() - t


def _padded_ms(classifier, repeat: int = 10) -> float:
    import numpy as np

    one = np.zeros((1, 48, 48, 1), np.uint8)
    classifier.predict(one)
    t = time.perf_counter()
    for _ in range(repeat):
        classifier.predict(one)
    return (time.perf_counter() - t) / repeat * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10-s clips and 25/100/400 photos")
    ap.add_argument("--clips", type=int, default=None, help="clips in the set (default: one a CPU)")
    ap.add_argument("--seconds", type=float, default=None, help="clip length (default 60, --quick 10)")
    ap.add_argument("--photos", type=int, default=None, help="smallest photo count (default 100, --quick 25)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/fer-batch-ray-scaling"))
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    cpus = os.cpu_count() or 1
    clips = args.clips or cpus
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    photos = args.photos or (25 if args.quick else 100)
    print(machine_line())
    print(f"load average at start: {os.getloadavg()[0]:.1f} (other work on this machine slows both engines)")

    import ray

    from fer_batch.batch import run_batch
    from fer_batch.classify import Classifier
    from fer_batch.cli._native import native_stderr, quiet_detector_factory
    from fer_batch.engine_ray import IMAGE_BATCH, RayEngine

    videos = [workload_clip(f"ray{i}", seconds=seconds) for i in range(clips)]
    counts = [photos, photos * 4, photos * 16]
    folders = [small_photos(n) for n in counts]
    warm = folders[0]
    args.out.mkdir(parents=True, exist_ok=True)

    # -- local ------------------------------------------------------------------------------------------------
    with native_stderr(None):
        classifier = _TimedClassifier(Classifier())
        alone = {b: Classifier(batch_size=b) for b in (IMAGE_BATCH, 256)}
        padded_ms = {b: _padded_ms(c) for b, c in alone.items()}
    # Each local worker's detector made (MediaPipe started) before the clock, as Ray's workers are warmed below.
    factory = quiet_detector_factory(None)
    detectors = [factory(_config(videos, args.out / "local.csv", workers=cpus).analyze) for _ in range(cpus)]
    t = time.perf_counter()
    local = run_batch(_config(videos, args.out / "local.csv", workers=cpus), classifier=classifier,
                      detector_factory=lambda _: detectors.pop())
    local_s = time.perf_counter() - t
    # -- ray --------------------------------------------------------------------------------------------------
    t = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    run_batch(_config([warm], args.out / "warm.csv"), engine=RayEngine())  # every worker loads its models
    setup_s = time.perf_counter() - t
    try:
        t = time.perf_counter()
        on_ray = run_batch(_config(videos, args.out / "ray.csv"), engine=RayEngine())
        ray_s = time.perf_counter() - t
        assert (on_ray.rows, on_ray.failed) == (local.rows, local.failed), (on_ray.rows, local.rows)
        print(f"\nthroughput: {clips} x {seconds:g}-s 720p clips, {local.rows} rows, every frame")
        print(f"  local  --workers {cpus}: {local_s:7.1f} s  {local.rows / local_s:6.1f} rows/s   "
              f"(CNN: {classifier.seconds:.1f} s = {classifier.seconds / local_s:.0%} of it)")
        print(f"  ray    {cpus} CPUs:      {ray_s:7.1f} s  {on_ray.rows / ray_s:6.1f} rows/s   "
              f"(setup before it: {setup_s:.1f} s)")
        print(f"  ray overhead: {ray_s / local_s - 1:+.1%} (target: under +25%)")
        print(f"  one face classified alone (a photo in a Ray task): {padded_ms[256]:.0f} ms in a padded network "
              f"batch of {alone[256].network_batch} (--batch-size 256), {padded_ms[IMAGE_BATCH]:.0f} ms in one of "
              f"{IMAGE_BATCH} (IMAGE_BATCH)")
        print("\ndriver memory (VmRSS) on Ray against the number of sources (one-face 320x240 photos):")
        for n, folder in zip(counts, folders):
            before = rss_mb()
            t = time.perf_counter()
            with _Peak() as peak:
                report = run_batch(_config([folder], args.out / f"photos{n}.csv"), engine=RayEngine())
            dt = time.perf_counter() - t
            print(f"  {n:5d} sources: {report.rows:5d} rows, {dt:6.1f} s ({n / dt:5.1f} sources/s); "
                  f"driver RSS before {before:6.0f} MB, peak during {peak.peak:6.0f} MB "
                  f"(+{peak.peak - before:.0f} MB)")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
