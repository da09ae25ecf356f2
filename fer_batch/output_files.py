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


def _entries(directory: Path) -> list[tuple[str, str]]:
    """(timeline, file relative to ``directory``) of each line; a line cut off by a kill is passed over."""
    try:
        text = (directory / MANIFEST).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("timeline"), str) and isinstance(entry.get("file"), str):
            entries.append((entry["timeline"], entry["file"]))
    return entries


def _line(timeline: str, rel: str) -> str:
    return json.dumps({"timeline": timeline, "file": rel}) + "\n"  # ASCII: undecodable bytes as \udcxx escapes


def record(directory: Path, timeline: Path, kind: str, files: Iterable[Path]) -> None:
    """Note ``files`` (inside ``directory``) as written for ``timeline``, as its ``kind`` of output ("charts")."""
    directory = Path(directory)
    key = _key(timeline, kind)
    lines = "".join(_line(key, os.path.relpath(f, directory)) for f in files)
    if lines:
        with open(directory / MANIFEST, "a", encoding="utf-8") as f:
            f.write(lines)


def remove_earlier(directory: Path, timeline: Path, kind: str, keep: Iterable[Path] = ()) -> list[Path]:
    """Delete the files recorded in ``directory`` as ``timeline``'s ``kind`` of output, except ``keep``; returns
    those deleted (a file already gone is only forgotten). The record is written again without them, each once."""
    directory = Path(directory)
    entries = _entries(directory)
    if not entries:
        return []
    key = _key(timeline, kind)
    kept = {os.path.relpath(f, directory) for f in keep}
    removed, lines = [], {}
    for owner, rel in entries:
        # Only a path inside the folder: a record edited by hand must not reach elsewhere.
        inside = not os.path.isabs(rel) and not rel.startswith(("..", os.sep)) and rel != MANIFEST
        if owner == key and rel not in kept and inside:
            path = directory / rel
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # kept on the record, to be tried again by the next run
                log.info("could not remove %s, which an earlier run of %s wrote: %s", path, timeline, exc)
                lines[(owner, rel)] = _line(owner, rel)
            continue
        lines[(owner, rel)] = _line(owner, rel)
    tmp = directory / f"{MANIFEST}.part"
    tmp.write_text("".join(lines.values()), encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)
    return removed
