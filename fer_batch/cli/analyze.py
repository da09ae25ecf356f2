"""``fer-batch analyze``: options -> RunConfig -> :func:`fer_batch.batch.run_batch` -> exit code."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from ..wording import count, shortened, shown_name
from . import EXIT_OK, EXIT_OUTPUT, EXIT_SOME_FAILED

HELP = """Detect every face in images and videos, classify each into the seven FER-2013 emotions and write a
per-frame timeline CSV (one row per face per analysed frame, one row per frame without a face)."""

EPILOG = """exit codes: 0 all sources analysed; 1 finished, but some sources failed (listed beside --out:
results.errors.csv for --out results.csv);
2 usage error (nothing was analysed); 3 model cannot be loaded; 5 an output could not be written once the run had
started (what was written before stays valid: fix the cause, then --resume); 70 an internal error (a bug:
please report it); 130 interrupted by Ctrl-C or SIGTERM (use --resume)."""


def output_path(text: str) -> Path:
    """An output option's path, ``~`` expanded: the shell leaves ``--out=~/r.csv`` as it is, which had made a
    folder named ``~`` here while the run said "timeline: ~/r.csv"."""
    return Path(text).expanduser()


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="analyse images and videos", description=HELP, epilog=EPILOG)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image/video files and/or directories (walked recursively)")
    p.add_argument("--out", required=True, type=output_path, help="timeline CSV to write")
    p.add_argument("--summary", type=output_path, help="per-source, per-face summary CSV to write")
    p.add_argument("--charts", type=output_path, metavar="DIR",
                   help="directory for PNG charts: per video its faces' emotions over time (the 32 seen longest), "
                        "and the distribution over everything analysed")
    p.add_argument("--annotate", type=output_path, metavar="DIR",
                   help="directory for annotated copies: each video as an H.264 MP4 with every face's box, id, "
                        "emotion and probabilities drawn, each photo in its own format")
    p.add_argument("--report", type=output_path, metavar="FILE.html",
                   help="one self-contained HTML page of the run: settings, failures, per file its timeline and "
                        "each face's thumbnails and emotions")
    sampling = p.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=int, default=1, metavar="N",
                          help="analyse every N-th video frame (default 1)")
    sampling.add_argument("--fps", type=float, metavar="F", help="analyse about F frames per second of video")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="faces per classifier batch (default 256)")
    p.add_argument("--model", default=None, metavar="NAME|PATH",
                   help="packaged model (fast, accurate; `fer-batch models` compares them) or a .keras file "
                        "(default: fast)")
    p.add_argument("--runtime", default="auto", metavar="auto|keras|tflite",
                   help="classifier runtime: keras (GPU when TensorFlow sees one), tflite (XNNPACK on the CPU, "
                        "where it converts), auto (default: keras "
                        "with a GPU or for a model with Keras-int8 layers such as accurate, else tflite)")
    p.add_argument("--detector", default="auto", metavar="auto|short|full",
                   help="MediaPipe BlazeFace: auto (default: both models, faces from ~24 px wide to frame-filling), "
                        "short (close faces only, fastest) or full (faces down to ~7%% of the frame's longer side)")
    p.add_argument("--min-face", type=int, default=0, metavar="PX",
                   help="ignore faces smaller than PX pixels (default 0: keep all)")
    p.add_argument("--min-score", type=float, default=0.5, metavar="S",
                   help="drop faces detected with a score below S (default 0.5); --detector auto keeps none below "
                        "0.5 by its own rules, so there S can only raise the bar")
    p.add_argument("--detect-size", type=int, default=640, metavar="PX",
                   help="frames are halved for detection until their longer side is at most PX (default 640)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="files decoded and detected in parallel (default 1)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default: this process) or ray (a Ray cluster; needs pip install -e \".[ray]\")")
    p.add_argument("--ray-address", metavar="auto|HOST:PORT|ray://HOST:PORT",
                   help="with --engine ray: the cluster to join (default: start a local Ray instance)")
    p.add_argument("--smooth", type=float, metavar="SECONDS",
                   help="also summarise after a centred moving average over SECONDS of video")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out and --summary")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run that wrote --out")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: analyse again the files the earlier run failed on (their rows and error "
                        "rows are taken out of the output first)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, no 'loading model' line")
    p.add_argument("--debug", action="store_true",
                   help="log each file (start, frames, faces, seconds, errors with tracebacks) to results.debug.log "
                        "for --out results.csv")
    p.set_defaults(run=run)


def _say_writing(option: str) -> None:
    """What the bars and the plain lines both print while an output is made from the finished timeline."""
    print(f"writing {option} ...", file=sys.stderr, flush=True)


class _TqdmProgress:
    """Progress bars: sources overall, and frames within the current video."""

    def __init__(self):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.files = None
        self.frames_bar = None

    def start(self, total_sources, already_done):
        self.files = self._tqdm(total=total_sources, initial=already_done, unit="file", desc="files", position=0,
                                dynamic_ncols=True)

    def source_start(self, event):
        if self.frames_bar is not None:
            self.frames_bar.close()
        self.frames_bar = None
        if event.media == "video":
            name = shortened(shown_name(event.source), 40)
            self.frames_bar = self._tqdm(total=event.frames or None, unit="frame", desc=name, position=1,
                                         leave=False, dynamic_ncols=True)

    def frames(self, n):
        if self.frames_bar is not None:
            self.frames_bar.update(n)

    def source_done(self, done):
        self.files.update(1)
        if done.error:
            self.files.write(f"error: {shown_name(done.source)}: {done.error}", file=sys.stderr)

    def close(self):
        for bar in (self.frames_bar, self.files):
            if bar is not None:
                bar.close()

    def writing(self, option):
        _say_writing(option)


class _QuietProgress:
    """No bars, but failures are still named on stderr as they happen."""

    def start(self, total_sources, already_done): ...
    def source_start(self, event): ...
    def frames(self, n): ...
    def source_done(self, done):
        if done.error:
            print(f"error: {shown_name(done.source)}: {done.error}", file=sys.stderr)
    def close(self): ...
    def writing(self, option): ...


class _LineProgress(_QuietProgress):
    """Where stderr is a log or a pipe, not a terminal: a plain line as each source ends (bars would fill a log with
    carriage returns and cursor moves)."""

    def __init__(self):
        self.total = self.done = 0

    def start(self, total_sources, already_done):
        self.total, self.done = total_sources, already_done

    def source_done(self, done):
        self.done += 1
        if done.error:  # one line that reads as a failure, not as a file analysed without a face
            print(f"[{self.done}/{self.total}] error: {shown_name(done.source)}: {done.error}", file=sys.stderr,
                  flush=True)
            return
        what = f"{count(done.frames, 'frame')}, {count(done.faces, 'face detection')}"
        print(f"[{self.done}/{self.total}] {shown_name(done.source)}: {what}", file=sys.stderr, flush=True)

    def writing(self, option):
        _say_writing(option)


@contextlib.contextmanager
def _debug_logging(path: Path | None):
    """``--debug``: the package's log, at DEBUG, into ``path`` while the run lasts; the logger is left as it was,
    whatever ends the run (a model that fails to load, Ctrl-C)."""
    if path is None:
        yield
        return
    import logging

    path.parent.mkdir(parents=True, exist_ok=True)  # --out's folder is otherwise made later
    # A file name whose bytes are not UTF-8 is logged as the CSVs hold it, not refused by the handler.
    handler = logging.FileHandler(path, encoding="utf-8", errors="surrogateescape")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s"))
    logger = logging.getLogger("fer_batch")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def _progress(quiet: bool):
    if quiet:
        return _QuietProgress()
    return _TqdmProgress() if sys.stderr.isatty() else _LineProgress()


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """SIGTERM (a scheduler's, ``timeout``'s) before the run starts (while the model loads, say) ends it as Ctrl-C
    does there: "interrupted", exit 130, as README says of both, instead of the kernel's 143 without a word."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_on_sigint(stop: threading.Event) -> dict:
    """Make Ctrl-C (and SIGTERM, which job schedulers and ``timeout`` send) set ``stop`` instead of raising wherever
    the main thread happens to be. One CI run under load finished as if never interrupted: a KeyboardInterrupt
    raised inside a library's Python code (TensorFlow, MediaPipe) may be swallowed there. With a flag, the run stops
    at its next frame, in our code, and ends as an interruption (exit 130, the last line, the --resume hint). A
    second signal raises at once. Returns the previous handlers, to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _engine(args: argparse.Namespace):
    """None for a local run, else the :class:`~fer_batch.engine_ray.RayEngine` (Ray's absence is a usage error)."""
    from ..errors import UsageError

    if args.engine == "local":
        if args.ray_address is not None:
            raise UsageError("--ray-address applies to --engine ray; add --engine ray or leave it out")
        return None
    elif args.engine == "ray":
        if args.workers != 1:
            raise UsageError(f"--workers {args.workers} applies to --engine local; on Ray each CPU of the cluster "
                             "analyses one source at a time")
        from ..engine_ray import RayEngine, import_ray

        import_ray()
        # The address is checked by connect(), before any output is made; --debug keeps Ray's logs.
        return RayEngine(address=args.ray_address, keep_session=args.debug)
    else:
        raise UsageError(f"--engine {args.engine!r} is not allowed; choose local or ray")


def _note_ineffective_min_score(args: argparse.Namespace) -> None:
    from ..detect_auto import AGREE

    if args.detector == "auto" and args.min_score < AGREE:
        print(f"note: --min-score {args.min_score:g} changes nothing with --detector auto, which keeps no face "
              f"scored below {AGREE:g} (it can only raise that bar); --detector short or full go lower",
              file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    with _sigterm_as_ctrl_c():  # until the run's own handler takes over (_stop_on_sigint)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..config import AnalyzeConfig, RunConfig

    config = RunConfig(
        paths=tuple(args.paths), out=args.out, summary=args.summary, charts=args.charts, smooth=args.smooth,
        annotate=args.annotate, report=args.report,
        overwrite=args.overwrite, resume=args.resume, retry_failed=args.retry_failed,
        analyze=AnalyzeConfig(every=args.every, fps=args.fps, batch_size=args.batch_size, model=args.model,
                              runtime=args.runtime,
                              detector=args.detector, min_face=args.min_face, min_score=args.min_score,
                              detect_max_side=args.detect_size, workers=args.workers),
    )
    engine = _engine(args)
    _note_ineffective_min_score(args)
    from ..batch import plan_run
    from ..classify import DEFAULT_MODEL, resolve_model
    from ..sources import OUTPUT_MARKER, supported_suffixes

    resolve_model(config.analyze.model)  # a wrong model name fails now, before any work
    plan = plan_run(config)  # inputs, --resume's journal: settled before TensorFlow is imported
    if config.resume and not config.out.exists():  # a mistyped --out would otherwise start over without a word
        print(f"note: --resume: no earlier output at {config.out}; starting a new run", file=sys.stderr)
    found = plan.found
    if found.duplicates:
        print(f"note: {count(found.duplicates, 'file')} reached a second time (through a symlink, or inputs that "
              "overlap) analysed once, under the name first met", file=sys.stderr)
    if found.duplicate_dirs:
        print(f"note: {count(found.duplicate_dirs, 'folder')} reached a second time (through a symlink) not walked "
              "again: their files are analysed once, under the names first met", file=sys.stderr)
    if found.output_dirs:
        shown = ", ".join(found.output_dirs[:3]) + (", ..." if len(found.output_dirs) > 3 else "")
        print(f"note: {count(len(found.output_dirs), 'folder')} holding an earlier run's charts or annotated copies "
              f"(marked {OUTPUT_MARKER}) not walked into: {shown}; name one to analyse its files", file=sys.stderr)
    for folder in found.named_output_dirs:
        print(f"note: {folder} holds an earlier run's charts or annotated copies (marked {OUTPUT_MARKER}); its files "
              "are analysed because it was named", file=sys.stderr)
    if not found.sources and not found.rejected:
        print(f"note: no image or video file among the inputs ({count(found.skipped, 'other file')} ignored); "
              f"{supported_suffixes()}", file=sys.stderr)
    from ._native import quiet_native_logs

    quiet_native_logs()
    debug_log = config.out.with_name(config.out.stem + ".debug.log") if args.debug else None
    from ..batch import run_batch
    from ..classify import Classifier
    from ..native import stderr_beside_native
    from ._native import native_stderr, quiet_detector_factory

    classifier = None
    progress = _progress(args.quiet)
    stop = threading.Event()
    with _debug_logging(debug_log), stderr_beside_native():
        # A finished --resume, or only named non-media files, needs no model; nor does Ray's driver (workers load it).
        if plan.todo and engine and not args.quiet:  # the first line at once here too: Ray takes seconds to start
            where = f"joining the Ray cluster at {args.ray_address}" if args.ray_address else "starting Ray"
            print(f"{where}; its workers load model {config.analyze.model or DEFAULT_MODEL} ...", file=sys.stderr,
                  flush=True)
        if plan.todo and engine:
            engine.connect()  # before any output is made: a cluster that cannot be joined leaves none behind
        if plan.todo and not engine:
            if not args.quiet:
                print(f"loading model {config.analyze.model or DEFAULT_MODEL} ...", file=sys.stderr, flush=True)
            with native_stderr(debug_log):
                classifier = Classifier(config.analyze.model, batch_size=config.analyze.batch_size,
                                        runtime=config.analyze.runtime)
        previous = _stop_on_sigint(stop)
        try:
            report = run_batch(config, progress=progress, classifier=classifier,
                               detector_factory=quiet_detector_factory(debug_log), stop=stop, engine=engine,
                               plan=plan)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if engine:
                engine.close()  # where run_batch failed before the engine ran (it closes itself otherwise)
    print(f"timeline: {report.outputs['timeline']}", file=sys.stderr)
    if not report.ok:
        print(f"errors:   {report.outputs['errors']}", file=sys.stderr)
    for source, reason in report.annotate_failures:
        print(f"annotate: {shown_name(source)}: {reason}", file=sys.stderr)
    for source, audio in report.annotate_notes:
        print(f"annotate: {shown_name(source)}: audio {audio}", file=sys.stderr)
    for key in ("summary", "charts", "annotate", "report"):
        if key in report.outputs:
            value = report.outputs[key]
            shown = getattr(config, key) if key in ("charts", "annotate") else value
            if not Path(shown).exists():  # --annotate where every file failed: no copy, no folder
                continue
            print(f"{key + ':':<9} {shown}", file=sys.stderr)
    gone = [p for p in report.removed if not p.exists()]  # not those this run wrote again
    if gone:
        print(f"note: removed {count(len(gone), 'chart or annotated copy', plural='charts or annotated copies')} "
              f"that an earlier run of {config.out} had written for files without results now "
              f"({shortened(str(gone[0]), 80)}{', ...' if len(gone) > 1 else ''})", file=sys.stderr)
    for line in report.few_faces_lines():
        print(line, file=sys.stderr)
    print(f"fer-batch: {report.line()}", file=sys.stderr)  # the last line of every run (README)
    if not report.ok:
        return EXIT_SOME_FAILED
    # Every file analysed, but an annotated copy (an output, as the timeline is) could not be written: a full disk
    # must not end in 0. (--resume draws the missing copies.)
    return EXIT_OUTPUT if report.annotate_failures else EXIT_OK
