"""FER-2013 datasets: the Kaggle CSV layout and image-folder trees, both as uint8 48x48x1 arrays.

Both loaders return the same :class:`Dataset`, so a model never knows where its faces came from, and the same face
gives the same array through either path (a 48x48 grayscale PNG is read back unchanged).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import gzip
import io
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import check_data, check_faces
from ..errors import DatasetError, InputError
from ..labels import ALIASES, EMOTIONS, NUM_CLASSES, label_for_name
from ..sources import IMAGE_SUFFIXES  # what analyze reads is what training reads

SIZE = 48
PIXELS = SIZE * SIZE

#: Kaggle's ``Usage`` values, and the folder names people use, mapped to our split names.
SPLIT_ALIASES = {
    "training": "train",
    "train": "train",
    "publictest": "val",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "privatetest": "test",
    "test": "test",
}


@dataclass
class Split:
    """Faces and labels of one split: ``x`` uint8 (N, 48, 48, 1), ``y`` int64 (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> list[int]:
        return np.bincount(self.y, minlength=NUM_CLASSES).tolist()


@dataclass
class Dataset:
    """Named splits (``train``, ``val``, ``test``; any may be missing) and the problems met while loading."""

    splits: dict[str, Split]
    source: str
    problems: list[str] = field(default_factory=list)
    #: How the splits were made: "usage" (the file says), "folders", "stratified-80/20", or "none" (one split
    #: ``all``: unsplit data loaded with ``holdout=False``).
    split_method: str = "usage"
    #: Things the user should know about the data as a whole (not per row), e.g. that whole photos were resized.
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Split:
        return self.splits[name]

    def get(self, name: str) -> Split | None:
        return self.splits.get(name)


def load_dataset(path: str | Path, *, seed: int = 0, val_fraction: float = 0.2, holdout: bool = True,
                 faces: str = "as-is", detector_factory=None) -> Dataset:
    """Load a FER-2013 CSV (plain or ``.gz``) or an image-folder tree, whichever ``path`` is.

    Data without splits (a CSV without ``Usage``, a folder of class folders) is split into ``train`` and a seeded,
    stratified ``val`` of ``val_fraction`` when ``holdout`` is true (training), and kept whole as split ``all`` when
    it is false (evaluation, which may then ask for the same holdout with :func:`stratified_split`).

    ``faces`` (image folders only): ``"as-is"`` resizes each image whole to 48x48 (for face crops, such as
    FER-2013 exported as PNGs); ``"detect"`` finds the face in each photo and cuts it as ``fer-batch analyze``
    does (see :mod:`fer_batch.training.photo_faces`, which takes ``detector_factory``); photos without a face are
    skipped and listed.
    """
    path = Path(path)
    check_data(path)
    check_faces(faces, path)
    if path.is_dir():
        dataset = load_folder(path, seed=seed, val_fraction=val_fraction, holdout=holdout, faces=faces,
                              detector_factory=detector_factory)
    else:
        dataset = load_csv(path, seed=seed, val_fraction=val_fraction, holdout=holdout)
    dataset.notes += overlap_notes(dataset)
    return dataset


def overlap_notes(dataset: Dataset) -> list[str]:
    """A note per split (val, test) holding faces identical, pixel for pixel, to training faces: measured on them,
    an accuracy counts faces the network learnt as unseen (a class folder copied under an alias, a photo saved
    twice; FER-2013 itself repeats some)."""
    seen = seen_in_training(dataset)
    return [f"{int(seen[name].sum()):,} of the {len(seen[name]):,} {name} faces are also training faces (the same "
            f"pixels): {name} accuracy counts them as unseen" for name in ("val", "test")
            if name in seen and seen[name].any()]


def seen_in_training(dataset: Dataset) -> dict[str, np.ndarray]:
    """For each split but train, whether each of its faces has the pixels of a training face (none without a
    training split)."""
    import hashlib

    train = dataset.splits.get("train")
    if train is None or not len(train):
        return {}
    key = lambda face: hashlib.blake2b(face.tobytes(), digest_size=16).digest()  # noqa: E731
    learnt = {key(face) for face in train.x}
    return {name: np.array([key(face) in learnt for face in split.x], dtype=bool)
            for name, split in dataset.splits.items() if name != "train"}


#: The file in a run's --out (train, evaluate) that lists every row or image skipped while the data was read.
SKIPPED_FILE = "skipped.txt"


def report_problems(dataset: Dataset, limit: int = 20, file=None, out: str | Path | None = None) -> None:
    """Print the rows/images skipped while loading (with their line numbers or paths), at most ``limit`` of them,
    then the dataset's :attr:`~Dataset.notes`. Where more were skipped, the last line says where every one is
    listed: ``out``'s :data:`SKIPPED_FILE` (:func:`write_problems`), or that an --out would list them."""
    import sys

    file = file or sys.stderr
    for problem in dataset.problems[:limit]:
        print(f"skipped: {problem}", file=file)
    if len(dataset.problems) > limit:
        where = f"every one in {Path(out) / SKIPPED_FILE}" if out is not None else "--out lists every one"
        print(f"skipped: ... and {len(dataset.problems) - limit} more (in all {len(dataset.problems)} of "
              f"{len(dataset.problems) + sum(len(s) for s in dataset.splits.values())}; {where})", file=file)
    for note in dataset.notes:
        print(f"note: {note}", file=file)


def write_problems(dataset: Dataset, out: str | Path) -> None:
    """``out``/:data:`SKIPPED_FILE`, a line per row or image skipped while loading, where any was (a stale one of an
    earlier run goes)."""
    path = Path(out) / SKIPPED_FILE
    if dataset.problems:
        path.write_text("".join(f"{p}\n" for p in dataset.problems), encoding="utf-8", errors="surrogateescape")
    else:
        path.unlink(missing_ok=True)


def describe_splits(dataset: Dataset) -> str:
    """One line of faces per split and class: what a run is about to learn from (a class with none is named)."""
    parts = []
    order = {"train": 0, "val": 1, "test": 2}  # as a run uses them, whatever order the CSV's rows came in
    for name, split in sorted(dataset.splits.items(), key=lambda item: order.get(item[0], 3)):
        if not len(split):
            parts.append(f"{name} 0")
            continue
        counts = split.counts()
        have = ", ".join(f"{e} {n:,}" for e, n in zip(EMOTIONS, counts) if n)
        none = [e for e, n in zip(EMOTIONS, counts) if not n]
        parts.append(f"{name} {len(split):,} ({have}{'; none of ' + ', '.join(none) if none else ''})")
    return "faces: " + "; ".join(parts)


def _some(paths: list, most: int) -> str:
    """The first ``most`` of ``paths``, and how many more: "a.png, b.png and 4 more"."""
    more = f" and {len(paths) - most} more" if len(paths) > most else ""
    return ", ".join(str(p) for p in paths[:most]) + more


def _no_usable(source, problems: list[str], what: str) -> DatasetError:
    shown = "".join(f"\n  {p}" for p in problems[:5])
    more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
    return DatasetError(f"{source}: no usable {what} ({len(problems)} skipped){shown}{more}")


#: Leading bytes of archives a FER-2013 CSV is downloaded in (Kaggle's fer2013.tar.gz; a .zip), to say so.
_ARCHIVES = ((0, b"PK\x03\x04", "a zip archive"), (257, b"ustar", "a tar archive"))


def _open_text(path: Path):
    """The CSV as text, gunzipped where it is gzip; one stream, sniffed and then read (a pipe cannot be reopened)."""
    raw = open(path, "rb")  # buffered: its first bytes can be looked at without being taken from a pipe
    try:
        binary, head = raw, raw.peek(512)[:512]
        if head[:2] == b"\x1f\x8b":
            binary = gzip.GzipFile(fileobj=raw)
            head = binary.peek(512)[:512]
        for offset, magic, kind in _ARCHIVES:
            if head[offset:offset + len(magic)] == magic:
                raise DatasetError(f"{path}: this is {kind}, not a CSV: extract fer2013.csv from it and give that "
                                   "(or its .csv.gz)")
        return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    except BaseException:
        raw.close()
        raise


def parse_pixels(text: str) -> np.ndarray:
    """Parse Kaggle's space-separated pixel string into a (48, 48) uint8 array; ValueError says what is wrong."""
    # Fast path for the usual 2,304 integers (about 10x faster than converting tokens); anything else (decimals,
    # junk, a wrong count) takes the careful path below, which also words the error.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # numpy warns when it stops before the end
        try:
            fast = np.fromstring(text, dtype=np.int64, sep=" ")
        except (DeprecationWarning, ValueError):
            fast = None
    if fast is not None and fast.size == PIXELS:
        if fast.min() < 0 or fast.max() > 255:
            raise ValueError("pixel values must lie in 0..255")
        return fast.astype(np.uint8).reshape(SIZE, SIZE)
    tokens = text.split()
    if len(tokens) != PIXELS:
        raise ValueError(f"expected {PIXELS} pixel values, got {len(tokens)}{_pixel_count_hint(text, len(tokens))}")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise ValueError(f"non-numeric pixel value {bad[:20]!r}") from None
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 255:
        raise ValueError("pixel values must lie in 0..255")
    return np.rint(values).astype(np.uint8).reshape(SIZE, SIZE)


def _pixel_count_hint(text: str, n: int) -> str:
    """Why a pixels cell may hold another count than 48 x 48, where the count or the text shows it."""
    if n <= 1 and ("," in text or ";" in text):
        return " (the values seem separated by commas or semicolons; FER-2013 separates them by spaces)"
    if n == 3 * PIXELS:
        return f" ({n} = 3 x {PIXELS}: a colour face? the pixels must be one grayscale value each)"
    root = round(n ** 0.5)
    if root * root == n and root != SIZE:
        return f" (a {root}x{root} face? the pixels must be a {SIZE}x{SIZE} one)"
    return f" (a {SIZE}x{SIZE} grayscale face, row by row)"


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def load_csv(path: str | Path, *, seed: int = 0, val_fraction: float = 0.2, holdout: bool = True) -> Dataset:
    """Read the Kaggle CSV layout ``emotion,pixels[,Usage]``.

    ``Training`` rows become ``train``, ``PublicTest`` rows ``val`` and ``PrivateTest`` rows ``test``. Without a
    ``Usage`` column the rows are split 80/20, stratified by class and seeded, as in the seed paper. Malformed rows
    are skipped and listed in :attr:`Dataset.problems` with their line numbers (the header is line 1).
    """
    path = Path(path)
    problems: list[str] = []
    per_split: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            try:
                header = [h.strip().lower() for h in next(reader)]
            except StopIteration:
                raise DatasetError(f"{path}: the file is empty") from None
            if "emotion" not in header or "pixels" not in header:
                sep = next((c for c in (";", "\t", "|") if len(header) == 1 and c in header[0]), None)
                hint = f" (its columns seem separated by {sep!r}; the CSV must use commas)" if sep else ""
                raise DatasetError(
                    f"{path}: expected a header with columns 'emotion,pixels[,Usage]', got "
                    f"{','.join(header)[:80]!r}{hint}"
                )
            i_emotion, i_pixels = header.index("emotion"), header.index("pixels")
            i_usage = header.index("usage") if "usage" in header else None
            while True:
                line_no = reader.line_num + 1  # where the next row starts (a row is one line in this layout)
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:  # a quote never closed: the rest of the file read as one field
                    problems.append(f"{path}:{line_no}: {exc}: a quote (\") opened in this row is never closed; "
                                    "this row and the rest of the file were not read")
                    break
                if reader.line_num > line_no:  # a quote took the lines up to the next one into this row
                    problems.append(f"{path}:{line_no}-{reader.line_num}: a quote (\") joins these lines into one "
                                    "row; skipped, with the rows on them")
                    continue
                if not row or all(not c.strip() for c in row):
                    continue
                try:
                    label = _csv_label(row[i_emotion])
                    if not 0 <= label < NUM_CLASSES:
                        raise ValueError(f"label {label} outside 0-{NUM_CLASSES - 1}")
                    face = parse_pixels(row[i_pixels])
                    split = "all"
                    if i_usage is not None:
                        usage = row[i_usage].strip().lower()
                        if usage not in SPLIT_ALIASES:
                            raise ValueError(f"unknown Usage {row[i_usage]!r} (FER-2013's are Training, PublicTest "
                                             f"and PrivateTest; also taken: {', '.join(sorted(SPLIT_ALIASES))})")
                        split = SPLIT_ALIASES[usage]
                except IndexError:
                    problems.append(f"{path}:{line_no}: expected {len(header)} columns, got {len(row)}")
                    continue
                except ValueError as exc:
                    problems.append(f"{path}:{line_no}: {exc}")
                    continue
                xs, ys = per_split.setdefault(split, ([], []))
                xs.append(face)
                ys.append(label)
    except (OSError, UnicodeDecodeError, EOFError, csv.Error, zlib.error) as exc:  # zlib: a damaged .gz
        raise DatasetError(f"{path}: cannot read as a FER-2013 CSV ({exc})") from None
    if not per_split:
        raise _no_usable(path, problems, "rows")
    splits = {name: _stack(xs, ys) for name, (xs, ys) in per_split.items()}
    method = "usage"
    if "all" in splits and not holdout:
        method = "none"
    elif "all" in splits:
        everything = splits.pop("all")
        train, val = stratified_split(everything, val_fraction=val_fraction, seed=seed)
        splits.setdefault("train", train)
        splits.setdefault("val", val)
        method = f"stratified-{round((1 - val_fraction) * 100)}/{round(val_fraction * 100)}"
    return Dataset(splits=splits, source=str(path), problems=problems, split_method=method)


def _csv_label(text: str) -> int:
    """An ``emotion`` cell: FER-2013's 0-6, or an emotion's name or alias as class folders take them."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:  # "3.0": a label column that went through floats (pandas writes an int column with a gap that way)
        number = float(text)
    except ValueError:
        label = label_for_name(text)
        if label is None:
            names = ", ".join(f"{i} {e}" for i, e in enumerate(EMOTIONS))
            raise ValueError(f"label {text[:20]!r} is neither 0-{NUM_CLASSES - 1} nor an emotion name ({names})"
                             f"{_closest(text)}") from None
        return label
    if not number.is_integer():
        raise ValueError(f"label {text[:20]!r} is not a whole number (0-{NUM_CLASSES - 1})")
    return int(number)


def read_face_image(path: str | Path) -> np.ndarray:
    """Any image file as a (48, 48) uint8 grayscale face (area-resampled when it is another size)."""
    return _read_face_image(path)[0]


def _read_face_image(path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
    """The 48x48 face and the (width, height) the image had, EXIF orientation applied, its pixels read as
    ``analyze`` reads them (:func:`~fer_batch.sources.to_rgb`: 16-bit, transparency), then made grey."""
    from PIL import Image, ImageOps

    from ..sources import to_rgb

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        size = im.size
        gray = np.asarray(Image.fromarray(to_rgb(im)).convert("L"), dtype=np.uint8)
    if gray.shape != (SIZE, SIZE):
        import cv2

        gray = cv2.resize(gray, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return gray, size


# Face-crop datasets are square, or nearly (FER-2013 48x48, RAF-DB 100x100, AffectNet crops); photos are not.
_PHOTO_ASPECT = 1.15
_PHOTO_SIDE = 400


def _looks_like_photos(sizes: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The largest (width, height) when the images look like whole photos rather than face crops, else None."""
    photos = [(w, h) for w, h in sizes if max(w, h) > _PHOTO_ASPECT * min(w, h) or max(w, h) > _PHOTO_SIDE]
    if len(photos) < max(1, len(sizes) // 4):
        return None
    return max(photos, key=lambda s: s[0] * s[1])


def load_folder(root: str | Path, *, seed: int = 0, val_fraction: float = 0.2, holdout: bool = True,
                faces: str = "as-is", detector_factory=None) -> Dataset:
    """Read ``ROOT/<split>/<emotion>/*.png|jpg`` (or ``ROOT/<emotion>/...`` without splits).

    Split folders may be named train/training, val/valid/validation/publictest, test/privatetest; class folders
    by FER-2013 name or a common alias (anger, happiness, sadness, ...). An unknown class folder is an error that
    lists the accepted names; unreadable images (and, with ``faces="detect"``, photos without a face) are skipped
    and listed in :attr:`Dataset.problems`. ``faces`` is as in :func:`load_dataset`.
    """
    check_faces(faces)
    root = Path(root)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DatasetError(f"{root}: expected class folders or split folders (train/val/test), found none")
    as_splits = {p: SPLIT_ALIASES.get(p.name.lower()) for p in subdirs}
    if all(v is not None for v in as_splits.values()):
        named: dict[str, list[str]] = collections.defaultdict(list)
        for p, split in as_splits.items():
            named[split].append(p.name)
        twice = [f"{split}: {' and '.join(names)}" for split, names in named.items() if len(names) > 1]
        if twice:  # one folder would be read and the other silently ignored
            raise DatasetError(f"{root}: more than one folder for the same split ({'; '.join(twice)}); merge them "
                               f"or rename one")
        layout = {split: p for p, split in as_splits.items()}
    elif any(v is not None for v in as_splits.values()):
        odd = [p.name for p, v in as_splits.items() if v is None]
        raise DatasetError(f"{root}: mixes split folders with other folders {odd}; split folders are "
                           f"{', '.join(sorted(SPLIT_ALIASES))} (train, val, test and their aliases)")
    else:
        layout = {"all": root}
    problems: list[str] = []
    splits: dict[str, Split] = {}
    other: collections.Counter = collections.Counter()  # files left out for their suffix
    empty: list[Path] = []  # class folders that gave no face
    loose: list[Path] = []  # images beside the class folders, in no class: no label
    sizes: list[tuple[int, int]] = []  # of the images read as-is, for the note on whole photos
    if faces == "detect":
        from .photo_faces import PhotoFaceCropper

        reading = PhotoFaceCropper(detector_factory)
    else:
        reading = contextlib.nullcontext()
    merged: list[str] = []  # "happy and happiness (train)": two class folders of one emotion, read as one
    with reading as cropper:
        for split, split_dir in layout.items():
            xs, ys = [], []
            named: dict[int, list[str]] = {}
            entries = sorted(p for p in split_dir.iterdir() if not p.name.startswith("."))
            loose += [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            for class_dir in (p for p in entries if p.is_dir()):
                label = label_for_name(class_dir.name)
                if label is None:
                    raise DatasetError(
                        f"{class_dir}: unknown emotion folder {class_dir.name!r}{_closest(class_dir.name)}; expected "
                        f"one of {', '.join(EMOTIONS)} (or an alias such as anger, happiness, sadness)"
                    )
                named.setdefault(label, []).append(class_dir.name)
                kept = len(ys)
                for image in sorted(class_dir.rglob("*")):
                    # hidden files and whatever lies in hidden folders (.ipynb_checkpoints, .thumbnails) are not data
                    if any(part.startswith(".") for part in image.relative_to(class_dir).parts) or \
                            not image.is_file():
                        continue
                    if image.suffix.lower() not in IMAGE_SUFFIXES:
                        other[image.suffix.lower() or "(none)"] += 1
                        continue
                    face, size, problem = _face_of(image, cropper)
                    if problem is not None:
                        problems.append(f"{image}: {problem}")
                        continue
                    if size is not None:
                        sizes.append(size)
                    xs.append(face)
                    ys.append(label)
                if len(ys) == kept:
                    empty.append(class_dir)
            if ys:
                splits[split] = _stack(xs, ys)
            where = "" if split == "all" else f" in {split_dir.name}/"
            merged += [f"{' and '.join(names)}{where} ({EMOTIONS[label]})" for label, names in named.items()
                       if len(names) > 1]
    notes = []
    if merged:
        notes.append(f"class folders of one emotion read as one class: {'; '.join(merged)}")
    if other:
        kinds = ", ".join(f"{suffix} {n}" for suffix, n in sorted(other.items()))
        notes.append(f"{sum(other.values())} file(s) in class folders left out for their suffix ({kinds}); images "
                     f"are read from {', '.join(sorted(IMAGE_SUFFIXES))}")
    if empty:
        notes.append(f"no usable image in {', '.join(str(p) for p in empty)}: that class has no faces there")
    if loose:  # a split laid out flat would otherwise vanish without a word
        notes.append(f"{len(loose)} image(s) outside the class folders left out ({_some(loose, 3)}): an image's "
                     "label is the name of the folder it is in (ROOT/<split>/<emotion>/ or ROOT/<emotion>/)")
    if cropper is not None and cropper.multi_face:
        notes.append(f"{len(cropper.multi_face)} image(s) showed several faces; the largest face of each was used, "
                     f"which may not be the labelled person's: {_some(cropper.multi_face, 5)}")
    if cropper is None and (largest := _looks_like_photos(sizes)) is not None:
        notes.append(f"images up to {largest[0]}x{largest[1]} pixels, many not square or larger than {_PHOTO_SIDE} "
                     "px, were resized whole to 48x48; if they are photos rather than face crops, pass --faces "
                     "detect to find and cut the faces as `fer-batch analyze` does")
    if not splits:
        if problems:
            raise _no_usable(root, problems, "images")
        raise DatasetError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in any class folder")
    method = "folders"
    if "all" in splits and not holdout:
        method = "none"
    elif "all" in splits:
        train, val = stratified_split(splits.pop("all"), val_fraction=val_fraction, seed=seed)
        splits.update(train=train, val=val)
        method = f"stratified-{round((1 - val_fraction) * 100)}/{round(val_fraction * 100)}"
    return Dataset(splits=splits, source=str(root), problems=problems, split_method=method, notes=notes)


def _closest(name: str) -> str:
    """``; did you mean 'happy'?`` for a folder name one or two typos from an accepted one, else empty."""
    import difflib

    names = list(ALIASES)
    match = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.75)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _face_of(image: Path, cropper) -> tuple[np.ndarray | None, tuple[int, int] | None, str | None]:
    """(face, size of the image read as-is, why it was skipped) for one image file of a folder dataset."""
    if cropper is not None:
        try:
            face = cropper.crop(image)
        except InputError as exc:
            return None, None, exc.reason
        return (face, None, None) if face is not None else (None, None, "no face found (--faces detect)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            face, size = _read_face_image(image)
    except Exception as exc:  # PIL raises many types for bad files; report and go on
        return None, None, f"unreadable image ({type(exc).__name__}: {exc})"
    return face, size, None


#: Why a seeded holdout (:func:`stratified_split`) can hold no faces.
HOLDOUT_TOO_SMALL = ("the seeded 80/20 holdout takes a fifth of each class, rounded: none of a class of 1 or 2 "
                     "faces")


def stratified_split(data: Split, *, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """Seeded per-class split, so both parts keep the class balance of the whole."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in range(NUM_CLASSES):
        idx = np.flatnonzero(data.y == label)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    tr = np.sort(np.concatenate(train_idx))
    va = np.sort(np.concatenate(val_idx))
    return Split(data.x[tr], data.y[tr]), Split(data.x[va], data.y[va])


def _stack(xs: list[np.ndarray], ys: list[int]) -> Split:
    x = np.stack(xs).reshape(-1, SIZE, SIZE, 1) if xs else np.zeros((0, SIZE, SIZE, 1), np.uint8)
    return Split(x=x, y=np.asarray(ys, dtype=np.int64))
