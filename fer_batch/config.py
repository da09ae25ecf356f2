"""Validated, frozen option objects for ``analyze`` and the batch run around it."""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

#: Face detectors (detect.FaceDetector): auto = both BlazeFace models, faces from ~24 px wide; short; full.
DETECTORS = ("auto", "short", "full")
#: Classifier runtimes (classify.Classifier): auto = tflite on CPU-only hosts, keras where TensorFlow sees a GPU.
RUNTIMES = ("auto", "keras", "tflite")
#: How `train`/`evaluate` turn an image folder's images into faces (fer_batch.training.photo_faces).
FACE_MODES = ("as-is", "detect")


#: The run's settings (RunConfig's paths, AnalyzeConfig's fields) as `fer-batch analyze` spells them, for messages
#: that speak to users of either (AnalyzeConfig's checks, a refused --resume in sinks).
#: The largest --batch-size: a batch of 48x48 float faces takes 9 KB a face (about 600 MB at this size) before the
#: network's activations, and batches beyond a few hundred faces gain nothing; a billion asked for terabytes.
MAX_BATCH = 65_536
OPTION_NAMES = {"paths": "PATH", "every": "--every", "fps": "--fps", "batch_size": "--batch-size", "model": "--model",
                "runtime": "--runtime", "detector": "--detector", "min_face": "--min-face", "min_score": "--min-score",
                "detect_max_side": "--detect-size", "workers": "--workers"}


def _both_names(field_name: str) -> str:
    """``batch_size (--batch-size)``; a field without an option by its own name."""
    option = OPTION_NAMES.get(field_name)
    return f"{field_name} ({option})" if option else field_name


def analyze_config(**options) -> "AnalyzeConfig":
    """``AnalyzeConfig(**options)``, where an unknown name is a :class:`UsageError` that lists the valid ones (and
    the closest), not Python's TypeError."""
    import dataclasses

    check_option_names(options, [f.name for f in dataclasses.fields(AnalyzeConfig)], takes="analyze() takes")
    return AnalyzeConfig(**options)


def check_option_names(options, known, *, takes: str, lead: str = "") -> None:
    """:class:`UsageError` for the first name in ``options`` that is not ``known``, with the closest one and the
    list (``lead`` before the message, ``takes`` before the list): keyword arguments a function passes on, where
    Python's TypeError would name neither."""
    import difflib

    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{lead}unknown option {name!r}{hint}; {takes} {', '.join(known)}")


def check_report_path(option: str, path: str | Path) -> None:
    """:class:`UsageError` unless ``path`` names an .html (or .htm) file: a browser would not open it as a page."""
    if Path(path).suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"{option} must name an .html file, got {str(path)!r}")


@dataclass(frozen=True)
class AnalyzeConfig:
    """What to analyse in each source and how; shared by the Python API and the CLI.

    ``every`` and ``fps`` choose which video frames are analysed (every N-th frame, or about F frames a second of
    video time); images always give one frame.
    """

    every: int = 1
    fps: float | None = None
    batch_size: int = 256
    model: str | None = None  # packaged name or .keras path; None -> the packaged default ("fast")
    runtime: str = "auto"  # classifier runtime: auto | keras | tflite (see classify.Classifier)
    detector: str = "auto"
    min_face: int = 0  # pixels: faces whose box is smaller on either side are ignored
    min_score: float = 0.5
    detect_max_side: int | None = 640  # frames are reduced to this longer side for detection only
    workers: int = 1  # sources decoded and detected in parallel
    max_pixels: int = 100_000_000  # larger images are refused instead of exhausting memory
    queue_frames: int = 64  # bound on frames in flight between detection and classification, per worker

    def __post_init__(self):
        # Types first: a string or None from a notebook must be this error, not a TypeError from a comparison.
        # NumPy's integers and floats (a notebook's np.int64(5)) are taken, as Python's from here on.
        for name in ("every", "batch_size", "min_face", "workers", "max_pixels", "queue_frames", "detect_max_side"):
            value = getattr(self, name)
            if value is None and name == "detect_max_side":
                continue
            if not _is_whole(value):
                raise UsageError(f"{_both_names(name)} must be a whole number, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not _is_number(self.min_score):
            raise UsageError(f"{_both_names('min_score')} must be a number, got {self.min_score!r}")
        object.__setattr__(self, "min_score", float(self.min_score))
        if self.every < 1:
            raise UsageError(f"--every must be a whole number >= 1, got {self.every!r}")
        if self.fps is not None:
            if not (_is_number(self.fps) and math.isfinite(self.fps) and self.fps > 0):
                raise UsageError(f"--fps must be a positive number of frames per second, got {self.fps!r}")
            object.__setattr__(self, "fps", float(self.fps))
            if self.every != 1:
                raise UsageError("--every and --fps choose frames in two different ways; give only one of them")
        if self.runtime not in RUNTIMES:
            raise UsageError(f"--runtime {self.runtime!r} is not allowed; choose one of {', '.join(RUNTIMES)}")
        check_count(_both_names("batch_size"), self.batch_size, MAX_BATCH)  # as Classifier checks and words it
        if self.detector not in DETECTORS:
            raise UsageError(f"--detector {self.detector!r} is not allowed; choose one of {', '.join(DETECTORS)}")
        if self.min_face < 0:
            raise UsageError(f"--min-face must be >= 0 pixels, got {self.min_face}")
        if not 0.0 < self.min_score <= 1.0:  # at 0 BlazeFace returns every anchor as a "face"
            raise UsageError(f"--min-score must lie in (0, 1], got {self.min_score}")
        if self.detect_max_side is not None and self.detect_max_side < 64:
            raise UsageError(f"--detect-size must be at least 64 pixels, got {self.detect_max_side}")
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.queue_frames < 1:
            raise UsageError(f"queue_frames must be at least 1, got {self.queue_frames}")
        if self.max_pixels < 1:  # 0 refused every photo, each failing on "above the 0-megapixel limit"
            raise UsageError(f"max_pixels must be at least 1, got {self.max_pixels}")


def check_smoothing(seconds, name: str) -> None:
    """Refuse (:class:`UsageError`, naming ``name``) a smoothing window that is not a positive number of seconds:
    a string failed in a comparison, True counted as 1 s, NaN made every smoothed mean NaN with "angry" on top."""
    if not (_is_number(seconds) and math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"{name} must be a positive number of seconds, got {seconds!r}")


def _is_whole(value) -> bool:
    """A whole number as a notebook may give one (NumPy's included), and not a bool."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_count(name: str, value, most: int | None = None) -> int:
    """``value`` as an int when it is a whole number from 1 to ``most``; else :class:`UsageError` naming ``name``."""
    if not _is_whole(value) or value < 1 or (most is not None and value > most):
        limit = f"from 1 to {most:,}" if most is not None else "of at least 1"
        raise UsageError(f"{name} must be a whole number {limit}, got {value!r}")
    return int(value)


def _is_number(value) -> bool:
    """A real number as a notebook may give one (NumPy's included), and not a bool (True is no frame rate)."""
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunConfig:
    """A whole batch run: the analysis options plus where results go."""

    paths: tuple[str, ...]
    out: Path
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    summary: Path | None = None
    charts: Path | None = None
    smooth: float | None = None  # seconds of centred moving average for the smoothed summary
    annotate: Path | None = None  # folder for annotated copies of the inputs (fer_batch.annotate)
    report: Path | None = None  # self-contained HTML report of the run (fer_batch.report)
    overwrite: bool = False
    resume: bool = False
    #: With ``resume``: the sources that failed in the earlier run are taken out of the output and analysed again.
    retry_failed: bool = False

    def __post_init__(self):
        for name in ("overwrite", "resume", "retry_failed"):  # overwrite="no" is truthy: it replaced the file
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"RunConfig({name}=...) takes True or False, got {getattr(self, name)!r}")
        if not isinstance(self.out, (str, os.PathLike)):
            raise UsageError(f"RunConfig(out=...) takes the timeline's .csv path, got {self.out!r}")
        if self.retry_failed and not self.resume:
            raise UsageError("--retry-failed analyses again the files an earlier run failed on: it needs --resume "
                             "(and the --out of that run)")
        object.__setattr__(self, "paths", existing_paths(self.paths))
        # Strings as the API's callers write them (out="results.csv"), Paths from here on.
        for name in ("out", "summary", "charts", "annotate", "report"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (str, os.PathLike)) or str(value) == ""):
                # summary=True read as a path gave pathlib's TypeError; "" became '.', the current folder
                raise UsageError(f"RunConfig({name}=...) takes a path (str or Path) or None, got {value!r}")
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if not isinstance(self.analyze, AnalyzeConfig):
            raise UsageError(f"RunConfig(analyze=...) takes an AnalyzeConfig, got {type(self.analyze).__name__}; "
                             "e.g. analyze=AnalyzeConfig(every=5)")
        if self.overwrite and self.resume:
            raise UsageError("--overwrite and --resume contradict each other; give one")
        _check_writable_file("--out", self.out, overwrite=self.overwrite or self.resume,
                             hint="pass --overwrite to replace it or --resume to continue the run that wrote it")
        if self.errors_path.is_dir():
            raise UsageError(f"--out {str(self.out)!r}: its errors file {str(self.errors_path)!r} is a directory; "
                             "move it or choose another --out")
        if self.summary is not None:
            _check_writable_file("--summary", self.summary, overwrite=self.overwrite or self.resume)
            for other, name in ((self.out, "--out"), (self.errors_path, "the errors file")):
                if _same_path(self.summary, other):
                    raise UsageError(f"--summary {str(self.summary)!r} is the same file as {name}; give another path")
        if self.charts is not None:
            if self.charts.exists() and not self.charts.is_dir():
                raise UsageError(f"--charts {str(self.charts)!r} is a file; give a directory for the chart PNGs")
            check_output_dir("--charts", self.charts)
        if self.annotate is not None:
            if self.annotate.exists() and not self.annotate.is_dir():
                raise UsageError(f"--annotate {str(self.annotate)!r} is a file; give a directory for the annotated "
                                 "copies")
            check_output_dir("--annotate", self.annotate)
        if self.report is not None:
            check_report_path("--report", self.report)
            if Path(self.report).is_dir():
                raise UsageError(f"--report {str(self.report)!r} is a directory; give an .html file path")
            _check_parent("--report", self.report)
        if self.smooth is not None:
            check_smoothing(self.smooth, "--smooth")
        if self.smooth is not None and not (self.summary or self.charts or self.report):
            raise UsageError(f"--smooth {self.smooth:g} smooths the summary, charts and report, and none was asked "
                             "for: add --summary, --charts or --report (the timeline keeps every frame's own result)")
        self._check_distinct_outputs()
        for option, folder in (("--charts", self.charts), ("--annotate", self.annotate)):
            if folder is None:
                continue
            given = [p for p in self.paths if Path(p).is_dir() and _same_path(Path(p), folder)]
            if given:  # its files would sit among the inputs, where the next run would analyse them
                raise UsageError(f"{option} {str(folder)!r} is the input folder {given[0]!r} itself; give a folder of "
                                 "its own (one inside the input folder is fine: runs do not walk into it)")
            inside = [p for p in self.paths if _inside(Path(p), folder)]
            if inside:  # marked as an output folder, it and the inputs in it would be skipped by every later walk
                raise UsageError(f"{option} {str(folder)!r} holds the input {inside[0]!r}: a folder fer-batch writes "
                                 "is marked as its output, and later runs skip it with everything in it; give a "
                                 "folder of its own (one inside the input folder is fine)")
            check_not_foreign(option, folder)

    def _check_distinct_outputs(self) -> None:
        """No two outputs may be the same path: the later one would fail (or overwrite the other) after all the
        work. (--summary against --out and the errors file is checked above, with its own message.)"""
        named = [("--out", self.out), ("the errors file", self.errors_path), ("--summary", self.summary),
                 ("--report", self.report), ("--charts", self.charts), ("--annotate", self.annotate)]
        named = [(option, path) for option, path in named if path is not None]
        folders = {"--charts", "--annotate"}  # may share one folder: flat chart PNGs beside the copies' tree
        for i, (option, path) in enumerate(named):
            for other, other_path in named[:i]:
                if {option, other} != folders and _same_path(path, other_path):
                    raise UsageError(f"{option} {str(path)!r} is the same path as {other}; give each output its "
                                     "own path")

    @property
    def errors_path(self) -> Path:
        return self.out.with_name(self.out.stem + ".errors.csv")


def as_paths(paths) -> tuple[str, ...]:
    """Input paths as strings. One ``str``/``bytes``/path-like on its own is one path: iterating a string would give
    its characters, "/" among them. An empty path is refused, since ``Path("")`` is the working directory."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    elif paths is not None and not hasattr(paths, "__iter__"):
        raise UsageError(f"paths: give a file or folder, or a list of them, got {type(paths).__name__} {paths!r}")
    given = () if paths is None else tuple(paths)  # not `paths or ()`: a NumPy array or pandas Series has no truth
    wrong = [p for p in given if not isinstance(p, (str, bytes, os.PathLike))]
    if wrong:  # os.fsdecode's "expected str, bytes or os.PathLike object, not NoneType"
        raise UsageError(f"paths: each must be a str or Path, got {type(wrong[0]).__name__} {wrong[0]!r}")
    paths = tuple(os.fsdecode(p) for p in given)
    if "" in paths:
        raise UsageError("an empty path was given; name a file or directory (use '.' for this one)")
    return paths


def existing_paths(paths) -> tuple[str, ...]:
    """:func:`as_paths`, and :class:`UsageError` unless there is at least one and each exists: the same check for
    the CLI and the Python API, made before any model loads."""
    used_up = iter(paths) is paths if hasattr(paths, "__iter__") and not isinstance(paths, (str, bytes)) else False
    paths = as_paths(paths)
    if not paths:
        # An iterator (a generator, map()) passed a second time is empty: say so, not only that nothing was given.
        hint = " (the paths were given as an iterator that was already used up: pass a list)" if used_up else ""
        raise UsageError(f"give at least one file or directory to analyse{hint}")
    missing = [p for p in paths if not _exists(p)]
    if missing:
        raise UsageError(f"no such file or directory: {', '.join(repr(m) for m in missing)}")
    return paths


def _exists(path) -> bool:
    """Whether ``path`` exists (a dangling symlink does: it is named as such later); a name too long to be a file's
    does not (pathlib raised "[Errno 36] File name too long", exit 5 before any work)."""
    try:
        return Path(path).exists() or Path(path).is_symlink()
    except OSError:
        return False


def check_data(data: str | Path) -> None:
    """:class:`~fer_batch.errors.DatasetError` for a train/evaluate ``--data`` that is missing, or a photo or video:
    read as a CSV, a PNG failed on its first byte ("'utf-8' codec can't decode byte 0x89"), after Keras loaded."""
    from .errors import DatasetError

    path = Path(data)
    if not path.exists():
        raise DatasetError(f"--data {str(data)!r}: no such file or directory")
    if path.is_file():
        from .sources.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

        suffix = path.suffix.lower()
        kind = "an image" if suffix in IMAGE_SUFFIXES else "a video" if suffix in VIDEO_SUFFIXES else None
        if kind is not None:
            raise DatasetError(f"--data {str(data)!r} is {kind}; --data takes a FER-2013 CSV (emotion,pixels[,Usage]; "
                               "plain or .gz) or a folder of class folders (ROOT/<emotion>/*.png, or "
                               "ROOT/train|val|test/<emotion>/...)")


def check_faces(faces: str, data: str | Path | None = None) -> None:
    """:class:`UsageError` unless ``faces`` is one of :data:`FACE_MODES` and, given ``data``, fits it: only an image
    folder has images to find faces in."""
    if faces not in FACE_MODES:
        raise UsageError(f"--faces {faces!r} is not allowed; choose one of {', '.join(FACE_MODES)}")
    if data is not None and faces != "as-is" and not Path(data).is_dir():
        raise UsageError(f"--faces {faces} applies to image folders; {data} is a CSV file, whose rows are already "
                         "48x48 face crops (leave --faces at as-is)")


def _same_path(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies below ``folder`` (resolved: ``.``, ``..`` and links count as what they lead to)."""
    return Path(folder).resolve() in Path(path).resolve().parents


def _check_parent(option: str, path: Path, hint: str = "") -> None:
    """The nearest existing ancestor of ``path`` must be a directory we can create files in (missing ones are
    created when writing)."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {str(path)!r}: {str(parent)!r} is a file, not a directory{hint}")
            _probe_dir(option, path, parent, hint)
            return


def _probe_dir(option: str, path: Path, directory: Path, hint: str = "") -> None:
    # Permission bits and os.access() miss read-only mounts, ACLs and pseudo-filesystems; creating a file does not.
    # Checked before any work, so that hours of analysis never end at an output that cannot be written. One
    # O_EXCL create with a random name, not tempfile: on Windows a denied create looks to tempfile like a name
    # clash, and it retries (CPython issue 66305).
    probe = Path(directory) / f".fer-batch-probe-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise UsageError(f"{option} {str(path)!r}: cannot write in {str(directory)!r} "
                         f"({exc.strerror or exc}){hint}") from None
    os.close(fd)
    try:
        probe.unlink()
    except OSError:
        pass  # written, so writable; a leftover empty probe file is harmless


#: Entries of an existing output folder looked at for media before it is marked (:func:`_foreign_media`).
FOREIGN_MEDIA_SCAN = 10_000


def check_not_foreign(option: str, folder: Path) -> None:
    """:class:`UsageError` where ``folder`` already holds photos or videos fer-batch did not write: marked as its
    output, they would vanish from every later walk."""
    media = _foreign_media(Path(folder))
    if media is not None:
        raise UsageError(f"{option} {str(folder)!r} already holds {media}: a folder fer-batch writes is marked as its "
                         "output, and later runs skip it with everything in it; give an empty or new folder")


def _foreign_media(folder: Path) -> str | None:
    """What in ``folder`` a later walk would no longer see once the folder is marked as fer-batch's output: its first
    image or video, as a run's walk would find it (hidden names and marked output folders passed over, folder links
    followed); None where the folder does not exist, is marked already, or holds no such file. A tree of more than
    :data:`FOREIGN_MEDIA_SCAN` entries is not looked through (this runs before any work): it is named as such."""
    from .sources import OUTPUT_MARKER, media_kind

    if not folder.is_dir() or (folder / OUTPUT_MARKER).exists():
        return None
    seen, visited, todo = 0, set(), [folder]
    while todo:
        here = todo.pop()
        try:
            st = here.stat()
            key = (st.st_dev, st.st_ino)
            entries = sorted(os.scandir(here), key=lambda e: e.name) if key not in visited else []
        except OSError:
            continue
        visited.add(key)
        seen += len(entries)
        if seen > FOREIGN_MEDIA_SCAN:
            return f"more than {FOREIGN_MEDIA_SCAN:,} files and folders (not looked through for photos or videos)"
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir():
                if not (path / OUTPUT_MARKER).exists():
                    todo.append(path)
            elif media_kind(path) is not None:
                return f"photos or videos that fer-batch did not write ({os.path.relpath(path, folder)})"
    return None


def check_output_dir(option: str, path: str | Path, hint: str = "") -> None:
    """:class:`UsageError` unless ``path`` is (or can be created as) a directory that files can be written in.

    ``hint`` ends the message (e.g. how to choose another path where the path was a default).
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{option} {str(path)!r} is a file; give a directory{hint}")
        _probe_dir(option, path, path, hint)
    else:
        _check_parent(option, path, hint)


def check_outside_data(option: str, path: str | Path, data: str | Path) -> None:
    """:class:`UsageError` when ``path`` (an output folder) lies inside the image folder ``data``: the next read of
    the data would take it for an unknown class folder, or, inside a class folder, its PNGs for faces."""
    if Path(data).is_dir() and (_inside(Path(path), Path(data)) or Path(path).resolve() == Path(data).resolve()):
        raise UsageError(f"{option} {str(path)!r} lies inside --data {str(data)!r}: its files would be read as faces "
                         "(or as a class folder) by the next run on that data; give a folder outside it")


def check_not_a_training_run(option: str, path: str | Path) -> None:
    """:class:`UsageError` when the folder ``path`` holds a training run (``config.json``): an evaluation written
    there would replace the run's own ``metrics.json`` and confusion matrices, and `fer-batch models` would then
    show another dataset's score as the run's."""
    if (Path(path) / "config.json").is_file():
        raise UsageError(f"{option} {str(path)!r} holds a training run ({Path(path) / 'config.json'}): its "
                         "metrics.json and confusion matrices would be replaced by this evaluation's; give another "
                         "folder")


#: The most bytes a file name has on the common file systems (ext4, XFS, APFS, NTFS in UTF-16 units).
NAME_MAX = 255
#: How much longer than --out's own name the names of the files beside it are (``.OUT.journal.commit``).
BESIDE_OUT = 16


def _check_name_length(option: str, path: Path) -> None:
    """:class:`UsageError` for an output whose name, or that of a file fer-batch writes beside it, is longer than a
    file name may be: the run failed before any work with "output error: [Errno 36] File name too long" (exit 5),
    and its --resume the same way."""
    extra = BESIDE_OUT if option == "--out" else 0
    size = len(os.fsencode(Path(path).name))
    if size + extra > NAME_MAX:
        beside = f" (fer-batch writes files beside it with names up to {extra} bytes longer)" if extra else ""
        raise UsageError(f"{option} {str(path)!r}: its name is {size} bytes; a file name may have {NAME_MAX}"
                         f"{beside}: give a name of at most {NAME_MAX - extra} bytes")


def _check_writable_file(option: str, path: Path, *, overwrite: bool,
                         hint: str = "pass --overwrite to replace it") -> None:
    """A .csv output path: not a directory, under a directory, and not replaced unless ``overwrite``."""
    if Path(path).suffix.lower() != ".csv":
        raise UsageError(f"{option} must name a .csv file, got {str(path)!r}")
    _check_name_length(option, path)
    if Path(path).is_dir():
        raise UsageError(f"{option} {str(path)!r} is a directory; give a .csv file path")
    _check_parent(option, path)
    if Path(path).exists():
        if not overwrite:
            raise UsageError(f"{option} {str(path)!r} already exists; {hint}")
        if Path(path).is_fifo() or Path(path).is_socket():  # opening one to append waits for a reader for ever
            raise UsageError(f"{option} {str(path)!r} is a named pipe or socket; give a .csv file path")
        try:
            open(path, "ab").close()  # opening to append changes nothing, and fails where writing would
        except OSError as exc:
            raise UsageError(f"{option} {str(path)!r} cannot be written ({exc.strerror or exc})") from None
