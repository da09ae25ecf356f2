"""Walking the input paths: which files are media, which of them hold several frames, and which folders are a
run's outputs (never walked into).

Directories are walked recursively in sorted order, hidden entries skipped and symlink loops survived."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import as_paths
from .media import IMAGE_SUFFIXES, MULTI_FRAME_SUFFIXES, SNIFFED_VIDEO_SUFFIXES, VIDEO_SUFFIXES, Source

@dataclass
class Discovery:
    """What walking the input paths found."""

    sources: list[Source] = field(default_factory=list)
    # (name, reason) for named non-media files and for directories that cannot be listed
    rejected: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0  # files inside directories that are not media by their suffix
    duplicates: int = 0  # media files reached a second time (a symlink, overlapping inputs): analysed once
    duplicate_dirs: int = 0  # folders reached a second time within one input (a symlink to one met before): walked once
    # Folders met inside the inputs that hold an OUTPUT_MARKER (another run's --charts or --annotate): not walked
    output_dirs: list[str] = field(default_factory=list)
    # Folders given as inputs that hold one: walked, because they were named
    named_output_dirs: list[str] = field(default_factory=list)


#: Written into the folders a run fills (``--annotate``, ``--charts``): a later walk, of any run, does not go into a
#: folder holding it, so annotated copies and chart PNGs are never analysed as inputs.
OUTPUT_MARKER = ".fer-batch-output"


def mark_output_dir(directory: Path) -> None:
    """Create ``directory`` (and its parents) as an output folder: see :data:`OUTPUT_MARKER`."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / OUTPUT_MARKER
    if not marker.exists():
        marker.write_text("Written by fer-batch: this folder holds its outputs, and input walks skip it.\n",
                          encoding="utf-8")


def media_kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in SNIFFED_VIDEO_SUFFIXES:
        # A named pipe is not read here (it would wait for a writer): as a video, it is reported as what it is.
        return "video" if not_a_regular_file(path) is not None or _is_transport_stream(path) else None
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def supported_suffixes() -> str:
    """"images: .bmp, ...; videos: .avi, ...": what a walk takes, for the messages that say what is allowed."""
    return f"images: {', '.join(sorted(IMAGE_SUFFIXES))}; videos: {', '.join(sorted(VIDEO_SUFFIXES))}"


def not_media_reason(path: Path) -> str:
    """Why a file that :func:`media_kind` does not take is not analysed, for its error row."""
    if path.suffix.lower() in SNIFFED_VIDEO_SUFFIXES:
        return f"not a video: its suffix is {path.suffix!r} but its bytes are not an MPEG transport stream"
    return f"not a supported image or video file (suffix {path.suffix or 'none'!r}); {supported_suffixes()}"


def _is_transport_stream(path: Path) -> bool:
    """Whether ``path`` holds an MPEG transport stream: the sync byte 0x47 at the start of five packets in a row, of
    188 bytes (or 192, which carry a 4-byte timestamp first, as Blu-ray and AVCHD write them), from anywhere in the
    first packet (a capture cut mid-packet starts with its tail; FFmpeg finds the next packet). A text file would
    need a "G" at five places exactly a packet apart. An unreadable file is taken for one, so that reading it says
    what is wrong."""
    try:
        with open(path, "rb") as f:
            head = f.read(6 * 192)
    except OSError:
        return True
    return any(all(head[start + k * size] == 0x47 for k in range(5))
               for size in (188, 192) for start in range(min(size, len(head) - 4 * size)))


def frames_kind(path: Path, kind: str) -> str:
    """The media of a file whose suffix says ``kind``: "video" for an image file with several frames.

    Opens the GIF, PNG, WebP and TIFF files to count their frames (a look at the header, or at the start of a
    GIF's second frame); a file that cannot be opened, or is not a regular file (a named pipe would wait for a
    writer), stays a photo, whose decoding then says what is wrong."""
    suffix = path.suffix.lower()
    if kind != "image" or suffix not in MULTI_FRAME_SUFFIXES or not_a_regular_file(path) is not None:
        return kind
    frames = _png_frames(path) if suffix == ".png" else None
    if frames is not None:  # an archive of PNG photos: a few bytes read each, a third of the time PIL takes to open
        return "video" if frames > 1 else "image"
    from PIL import Image

    from ..threads import warnings_ignored

    try:
        with warnings_ignored(), Image.open(path) as im:
            several = bool(getattr(im, "is_animated", False))
    except Exception:  # PIL raises many kinds for a damaged file (as read_image expects)
        return kind
    return "video" if several else kind


def _png_frames(path: Path) -> int | None:
    """The frames of a PNG as PIL counts them (1 without an animation control chunk; the animation's frames, and its
    default image where that is not the first of them); None where the file does not start as a PNG or cannot be
    read, for PIL to look at."""
    import struct

    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            frames = None
            for _ in range(256):  # acTL comes before the first image data, after a few metadata chunks
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, chunk = struct.unpack(">I4s", head)
                if chunk == b"acTL":
                    body = f.read(4)
                    if len(body) < 4:
                        return None
                    frames = struct.unpack(">I", body)[0]
                    f.seek(length, os.SEEK_CUR)  # the rest of the chunk and its CRC
                    continue
                if chunk == b"fcTL" and frames is not None:  # the default image is the animation's first frame
                    return frames
                if chunk == b"IDAT":  # a still PNG, or an animation whose default image is a poster players skip
                    return 1 if frames is None else frames + 1
                f.seek(length + 4, os.SEEK_CUR)  # the chunk's data and CRC
    except OSError:
        return None
    return None


def discover(paths, *, skip_dirs=()) -> Discovery:
    """Expand files and directories into a deterministic list of media sources.

    A file named explicitly that is not media by its suffix is rejected with a reason; inside directories such
    files are only counted, so a stray README does not fail a batch. One path may be given on its own (a ``str``
    or path-like): iterating a string would otherwise walk each of its characters, "/" among them.
    ``skip_dirs``: folders not walked into when met inside a given directory, such as the run's own output
    folders (``--annotate``, ``--charts``), whose copies and charts would otherwise be analysed by the next run.
    """
    paths = as_paths(paths)
    found = Discovery()
    seen: set[str] = set()
    skip = {os.path.realpath(d) for d in skip_dirs if d is not None}

    def add(path: Path, name: str, explicit: bool):
        # Each file once, whether reached twice or named twice, media or not (a text file named twice was two
        # failures, and a folder reached twice counted its non-media files twice).
        kind = media_kind(path)
        key = os.path.realpath(path)
        if key in seen:
            found.duplicates += kind is not None  # the note says how many were analysed once
            return
        seen.add(key)
        # (a stat, only where the answer matters: not for every sidecar file of a walked folder)
        odd = not_a_regular_file(path) if kind is not None or explicit else None
        if odd is not None:
            # A decoder would wait on a named pipe for ever, or read a device without end; said before the
            # suffix, which a device (/dev/zero) has none of.
            found.rejected.append((name, f"not a regular file ({odd})"))
            return
        if kind is None:
            if explicit:
                found.rejected.append((name, not_media_reason(path)))
            else:
                found.skipped += 1
            return
        kind = frames_kind(path, kind)
        found.sources.append(Source(path=path, name=name, media=kind))

    def again(name: str) -> None:
        found.duplicate_dirs += 1

    for given in paths:
        root = Path(given)
        if root.is_dir():
            if (root / OUTPUT_MARKER).exists():
                found.named_output_dirs.append(str(given))
            _walk(root, str(given), add, visited=set(), reject=found.rejected.append, skip=skip, again=again,
                  passed=found.output_dirs.append)
        else:
            add(root, str(given), explicit=True)
    return found


def not_a_regular_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (after symlinks): "a named pipe", "a socket", "a device"."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # gone or unreadable: reading it says which, as for any other file
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


#: Folders deeper than this below a given folder are not walked, but named as an error: a tree that deep (or a
#: chain of folder links) is a mistake, and Python's recursion limit ended the whole run at about 990.
MAX_WALK_DEPTH = 200


def _walk(directory: Path, name: str, add, visited: set, reject, skip: set = frozenset(), again=None,
          ancestors: tuple = (), passed=None) -> None:
    if len(ancestors) > MAX_WALK_DEPTH:
        reject((name, f"more than {MAX_WALK_DEPTH} folders below the folder given: not walked"))
        return
    try:
        st = directory.stat()
    except OSError as exc:  # a path too long, a stale network handle: an error row, not a subtree silently gone
        reject((name, f"cannot read directory ({exc.strerror or exc})"))
        return
    key = (st.st_dev, st.st_ino)
    if key in visited:  # the same directory reached twice (counted), or a symlink loop back to an ancestor (not)
        if again is not None and key not in ancestors:
            again(name)
        return
    visited.add(key)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:  # an unreadable directory is an error, not a silent gap in the results
        reject((name, f"cannot read directory ({exc.strerror or exc})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        child = Path(entry.path)
        child_name = os.path.join(name, entry.name)
        try:
            is_dir = entry.is_dir()  # follows symlinks; loops are caught by `visited`
        except OSError:
            is_dir = False
        if is_dir:
            if skip and os.path.realpath(child) in skip:  # this run's own output folders
                continue
            if os.path.exists(os.path.join(child, OUTPUT_MARKER)):  # another run's
                if passed is not None:
                    passed(child_name)
                continue
            _walk(child, child_name, add, visited, reject, skip, again, (*ancestors, key), passed)
        else:
            add(child, child_name, explicit=False)
