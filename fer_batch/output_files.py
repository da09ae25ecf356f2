"""Which files in an output folder (``--charts``, ``--annotate``) fer-batch wrote, and for which timeline.

A run that replaces a timeline (``--overwrite``, or a new run where an earlier one's timeline was deleted) removes
the charts and annotated copies that the earlier run of that timeline wrote and this one did not (a source no longer
among the inputs, or failed this time): they were left beside the new ones as if they were its results. A file that
another timeline's run, or the user, put in the folder is never touched: only those recorded here for this
timeline are, and only of the same kind (``--charts`` and ``--annotate`` may share a folder). The record is a hidden
JSON-lines file in the folder, appended a line a file as each is written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("fer_batch")

#: The record's name in an output folder (hidden: walks pass over it, as over the folder itself).
MANIFEST = ".fer-batch-files"


def _key(timeline: Path, kind: str) -> str:
    return f"{kind}:{Path(timeline).resolve()}"


def _entries(directory: Path) -> dict[str, tuple[str, int | None, int | None]]:
    """{file relative to ``directory``: (timeline, size, mtime_ns)} by the last line that names each file (the
    last run that wrote a file owns it); a line cut off by a kill is passed over."""
    try:
        text = (directory / MANIFEST).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    entries = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("timeline"), str) and isinstance(entry.get("file"), str):
            entries[entry["file"]] = (entry["timeline"], entry.get("size"), entry.get("mtime_ns"))
    return entries


def _line(timeline: str, rel: str, size: int | None, mtime_ns: int | None) -> str:
    # ASCII JSON: undecodable bytes of a name as \udcxx escapes
    return json.dumps({"timeline": timeline, "file": rel, "size": size, "mtime_ns": mtime_ns}) + "\n"


def _stat(path: Path) -> tuple[int | None, int | None]:
    try:
        st = path.stat()
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


def record(directory: Path, timeline: Path, kind: str, files: Iterable[Path]) -> None:
    """Note ``files`` (inside ``directory``, as written just now) as ``timeline``'s ``kind`` of output ("charts"),
    with their size and time, so that a file changed since (another run's, the user's) is never taken for it."""
    directory = Path(directory)
    key = _key(timeline, kind)
    lines = "".join(_line(key, os.path.relpath(f, directory), *_stat(Path(f))) for f in files)
    if lines:
        with open(directory / MANIFEST, "a", encoding="utf-8") as f:
            f.write(lines)


def remove_earlier(directory: Path, timeline: Path, kind: str, keep: Iterable[Path] = ()) -> list[Path]:
    """Delete the files recorded in ``directory`` as ``timeline``'s ``kind`` of output, except ``keep`` and any
    changed since it was recorded (size or time: rewritten by another timeline's run, or replaced by the user);
    returns those deleted. The record is written again with a line per file still there."""
    directory = Path(directory)
    entries = _entries(directory)
    if not entries:
        return []
    key = _key(timeline, kind)
    kept = {os.path.relpath(f, directory) for f in keep}
    removed, lines = [], []
    for rel, (owner, size, mtime_ns) in entries.items():
        path = directory / rel
        # Only a path inside the folder: a record edited by hand must not reach elsewhere.
        inside = not os.path.isabs(rel) and not rel.startswith(("..", os.sep)) and rel != MANIFEST
        now = _stat(path)
        if now == (None, None) or not inside:
            continue  # gone: forgotten
        if owner == key and rel not in kept and now == (size, mtime_ns):
            try:
                path.unlink()
                removed.append(path)
                continue
            except OSError as exc:  # kept on the record, to be tried again by the next run
                log.info("could not remove %s, which an earlier run of %s wrote: %s", path, timeline, exc)
        lines.append(_line(owner, rel, size, mtime_ns))
    tmp = directory / f"{MANIFEST}.{os.getpid()}.part"
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)
    return removed
