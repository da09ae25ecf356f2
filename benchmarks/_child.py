"""The measured side of analyze_speed.py: one measurement per process, so peak RSS belongs to it alone.

    python benchmarks/_child.py floor VIDEO|PHOTO_DIR
    python benchmarks/_child.py ours VIDEO|PHOTO_DIR --out DIR [--workers N] [--detect-size PX] [--batch-size N]
                                [--detector NAME] [--repo TREE] [--annotate DIR]
    python benchmarks/_child.py profile VIDEO --out DIR [--detect-size PX] [--detector NAME] [--repo TREE]

``floor``: OpenCV reading every frame of a video (``cv2.VideoCapture.read``: decode + conversion to BGR), or
``cv2.imread`` of every photo in a folder. ``ours``: :func:`fer_batch.batch.run_batch` -- exactly what
``fer-batch analyze PATH --out DIR/results.csv --quiet`` runs -- on every frame. Prints one JSON line: frames,
seconds (the work only: imports, model loading and the first run of the classifier and of each detector are
``setup_s``), fps, and ``cpu_s`` (the process's CPU time during the work, all threads). The parent reads peak RSS from the kernel when this process ends (``os.wait4``).
``profile``: the stages of ``ours`` run one after another on one thread (decode, detect, align, classify in
batches, write the timeline), each timed in wall and process CPU milliseconds per frame: what each stage costs
alone, to set beside the pipeline's ms per frame. (A decoder with threads of its own keeps decoding ahead while the
next stages run, and that CPU time lands in theirs: with FFmpeg's frame threads, "detect" grows as "decode" shrinks.) ``--repo`` imports ``fer_batch`` from another checkout (the
build compared against), default this one.
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


def _cpu() -> float:
    """CPU seconds of this process so far, every thread (native decoder, MediaPipe and XNNPACK threads too)."""
    t = os.times()
    return t.user + t.system


def _options(workers: int, detect_size: int | None, batch_size: int | None, detector: str | None,
             model: str | None = None) -> dict:
    options = {"workers": workers}
    if model:
        options["model"] = model
    if detect_size:
        options["detect_max_side"] = detect_size
    if batch_size:
        options["batch_size"] = batch_size
    if detector:
        options["detector"] = detector
    return options


def ours(path: Path, out: Path, workers: int, detect_size: int | None, batch_size: int | None,
         detector: str | None = None, annotate: Path | None = None, model: str | None = None) -> dict:
    t0 = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    from fer_batch.batch import run_batch
    from fer_batch.classify import Classifier
    from fer_batch.cli._native import native_stderr, quiet_detector_factory
    from fer_batch.config import AnalyzeConfig, RunConfig

    # annotate only when asked: an older tree measured with --repo has no such option
    config = RunConfig(paths=(str(path),), out=out / "results.csv", overwrite=True,
                       **({"annotate": annotate} if annotate else {}),
                       analyze=AnalyzeConfig(**_options(workers, detect_size, batch_size, detector, model)))
    with native_stderr(None):  # as the CLI makes it (cli/analyze.py): the run's batch size and runtime
        classifier = Classifier(config.analyze.model, batch_size=config.analyze.batch_size,
                                runtime=config.analyze.runtime)
    detectors = _warm(classifier, quiet_detector_factory(None), config.analyze, workers)
    setup = time.perf_counter() - t0
    count = _Count()
    cpu, t = _cpu(), time.perf_counter()
    report = run_batch(config, progress=count, classifier=classifier, detector_factory=lambda _: detectors.pop())
    seconds, cpu = time.perf_counter() - t, _cpu() - cpu
    return {"frames": count.analysed, "faces": count.faces, "rows": report.rows, "failed": report.failed,
            "seconds": seconds, "fps": count.analysed / seconds, "setup_s": setup, "cpu_s": cpu,
            "cores": len(os.sched_getaffinity(0)), "runtime": classifier.runtime, "tree": _tree()}


def _warm(classifier, factory, config, workers: int) -> list:
    """Start-up done before the clock starts, as the issue asks ("start-up is not in these figures"): each worker's
    detector made and run once (MediaPipe starts its graph, XNNPACK packs its weights), and one classifier batch
    run. Left in, they cost the same in both trees but a larger share of the faster one's 2-s run."""
    import numpy as np

    classifier.predict(np.zeros((1, 48, 48, 1), np.uint8))
    detectors = [factory(config) for _ in range(workers)]
    for detector in detectors:
        detector.detect(np.zeros((720, 1280, 3), np.uint8))
    return detectors


def _tree() -> str:
    """The checkout whose fer_batch was imported (this tree or --repo)."""
    import fer_batch

    return str(Path(fer_batch.__file__).resolve().parents[1])


class _Stages:
    """Wall and CPU seconds spent in each named stage."""

    NAMES = ("decode", "detect", "align", "classify", "write")

    def __init__(self):
        self.wall = dict.fromkeys(self.NAMES, 0.0)
        self.cpu = dict.fromkeys(self.NAMES, 0.0)

    def timed(self, name: str, fn, *args, **kwargs):
        c, t = _cpu(), time.perf_counter()
        result = fn(*args, **kwargs)
        self.wall[name] += time.perf_counter() - t
        self.cpu[name] += _cpu() - c
        return result


def profile(path: Path, out: Path, detect_size: int | None, batch_size: int | None, detector: str | None,
            model: str | None = None) -> dict:
    """The stages of one video's analysis in sequence, each timed (see the module docstring)."""
    t0 = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    from fer_batch.classify import Classifier
    from fer_batch.cli._native import native_stderr, quiet_detector_factory
    from fer_batch.config import AnalyzeConfig
    from fer_batch.crops import align_faces
    from fer_batch.pipeline import FrameItem
    from fer_batch.sinks import RunWriter
    from fer_batch.sources import Source, iter_frames

    config = AnalyzeConfig(**_options(1, detect_size, batch_size, detector, model))
    with native_stderr(None):
        classifier = Classifier(config.model, batch_size=config.batch_size, runtime=config.runtime)
    detector = quiet_detector_factory(None)(config)
    writer = RunWriter(out / "profile.csv", out / "profile.errors.csv", resume=False, settings={})
    setup = time.perf_counter() - t0
    source = Source(path, path.name, "video")
    stages, frames, faces, pending = _Stages(), 0, 0, []

    def classify_and_write(items):
        crops = [it.crops for it in items if len(it.crops)]
        if crops:
            import numpy as np

            probs = stages.timed("classify", classifier.predict, np.concatenate(crops))
            at = 0
            for it in items:
                it.probs, at = probs[at:at + len(it.crops)], at + len(it.crops)
        stages.timed("write", lambda: writer.write([r for it in items for r in it.records()]))

    frames_it = iter_frames(source, max_pixels=config.max_pixels, bgr=True)
    t = time.perf_counter()
    while True:
        frame = stages.timed("decode", next, frames_it, None)
        if frame is None:
            break
        dets = stages.timed("detect", detector.detect, frame.bgr, bgr=True)
        crops = stages.timed("align", align_faces, frame.bgr, dets, bgr=True)
        pending.append(FrameItem(source, frame.index, frame.time_s, [(round(d.x), round(d.y), round(d.w),
                                 round(d.h)) for d in dets], [d.score for d in dets], list(range(len(dets))), crops))
        frames += 1
        faces += len(dets)
        if sum(len(it.crops) for it in pending) >= config.batch_size:
            classify_and_write(pending)
            pending = []
    classify_and_write(pending)
    seconds = time.perf_counter() - t
    writer.close()
    detector.close()
    per_frame = lambda d: {k: 1000.0 * v / max(frames, 1) for k, v in d.items()}  # noqa: E731
    return {"frames": frames, "faces": faces, "seconds": seconds, "fps": frames / seconds, "setup_s": setup,
            "wall_ms": per_frame(stages.wall), "cpu_ms": per_frame(stages.cpu), "runtime": classifier.runtime,
            "tree": _tree()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("floor", "ours", "profile"))
    ap.add_argument("path", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--detect-size", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--detector", help="--detector for ours/profile (default: the tree's own default)")
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose fer_batch is measured")
    ap.add_argument("--annotate", type=Path, help="also write annotated copies to this folder (--annotate)")
    ap.add_argument("--model", help="--model for ours/profile (default: the tree's own fast)")
    args = ap.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))
    if args.what == "floor":
        result = floor(args.path)
    elif args.what == "ours":
        result = ours(args.path, args.out, args.workers, args.detect_size, args.batch_size, args.detector,
                      args.annotate, args.model)
    else:
        result = profile(args.path, args.out, args.detect_size, args.batch_size, args.detector, args.model)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
