"""Incremental CSV writers with per-source atomic commits and a journal that makes ``--resume`` exact.

Rows of a source are appended to a staging file as they arrive (flushed per batch), and copied into the timeline
in one step when the source ends. After each commit the timeline and errors files are fsynced and a journal line
records their sizes. A resumed run truncates both files back to the last journalled sizes (dropping any half-
copied source), skips the committed sources and redoes the rest, so its final CSV equals an uninterrupted run's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from .errors import UsageError
from .records import COLUMNS, ERROR_COLUMNS, FaceRecord, SourceDone

JOURNAL_VERSION = 1


def _fsync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _open_csv(path: Path, mode: str):
    # surrogateescape keeps undecodable file-name bytes exactly as they are on disk.
    return open(path, mode, newline="", encoding="utf-8", errors="surrogateescape")


class RunWriter:
    """Owns the timeline CSV, the errors CSV, the staging folder and the journal of one run."""

    def __init__(self, out: Path, errors_path: Path, *, resume: bool, settings: dict):
        self.out = Path(out)
        self.errors_path = Path(errors_path)
        self.journal_path = self.out.with_name(f".{self.out.name}.journal")
        self.staging = self.out.with_name(f".{self.out.name}.parts")
        self.committed: dict[str, dict] = {}
        self._staged: dict[str, tuple[Path, object, csv.writer]] = {}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.out.exists():
            self._reopen(settings)
        else:
            self._start(settings)
        self.staging.mkdir(exist_ok=True)

    # -- set-up ------------------------------------------------------------------------------------------
    def _start(self, settings: dict) -> None:
        for path, header in ((self.out, COLUMNS), (self.errors_path, ERROR_COLUMNS)):
            with _open_csv(path, "w") as f:
                csv.writer(f).writerow(header)
                _fsync(f)
        with open(self.journal_path, "w", encoding="utf-8") as j:
            j.write(json.dumps({"version": JOURNAL_VERSION, "settings": settings,
                                "out_size": self.out.stat().st_size,
                                "errors_size": self.errors_path.stat().st_size}) + "\n")
            _fsync(j)
        if self.staging.exists():
            shutil.rmtree(self.staging)

    def _reopen(self, settings: dict) -> None:
        if not self.journal_path.exists():
            raise UsageError(f"--resume: {self.out} has no journal ({self.journal_path.name}); it was not written "
                             "by a fer-batch run that can be resumed. Use --overwrite to start again")
        lines = self.journal_path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything after it is uncommitted
        if not entries or entries[0].get("version") != JOURNAL_VERSION:
            raise UsageError(f"--resume: the journal {self.journal_path} is unreadable; use --overwrite")
        previous = entries[0].get("settings", {})
        if previous != settings:
            changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            raise UsageError(f"--resume: options differ from the interrupted run ({', '.join(changed)}); resume "
                             "with the same options, or use --overwrite")
        last = entries[0]
        for entry in entries[1:]:
            self.committed[entry["source"]] = entry
            last = entry
        for path, size in ((self.out, last["out_size"]), (self.errors_path, last["errors_size"])):
            if not path.exists():
                raise UsageError(f"--resume: {path} is missing; use --overwrite")
            with open(path, "r+b") as f:
                f.truncate(size)
                _fsync(f)
        # Rewrite the journal without any torn tail so later appends stay parseable.
        with open(self.journal_path, "w", encoding="utf-8", errors="surrogateescape") as j:
            for entry in entries:
                j.write(json.dumps(entry) + "\n")
            _fsync(j)
        if self.staging.exists():
            shutil.rmtree(self.staging)

    # -- streaming ---------------------------------------------------------------------------------------
    def write(self, records: list[FaceRecord]) -> None:
        """Append records to their sources' staging files (flushed, not yet committed)."""
        touched = set()
        for rec in records:
            staged = self._staged.get(rec.source)
            if staged is None:
                name = hashlib.sha1(rec.source.encode("utf-8", "surrogateescape")).hexdigest()[:16] + ".csv"
                path = self.staging / name
                f = _open_csv(path, "w")
                staged = self._staged[rec.source] = (path, f, csv.writer(f))
            staged[2].writerow(rec.to_row())
            touched.add(rec.source)
        for source in touched:
            self._staged[source][1].flush()

    def commit(self, done: SourceDone) -> None:
        """Move a finished source's rows into the timeline, record its error, fsync, then journal it."""
        staged = self._staged.pop(done.source, None)
        with _open_csv(self.out, "a") as out:
            if staged is not None:
                path, f, _ = staged
                f.close()
                with _open_csv(path, "r") as src:
                    shutil.copyfileobj(src, out)
                path.unlink()
            _fsync(out)
            out_size = out.tell()
        with _open_csv(self.errors_path, "a") as err:
            if done.error:
                csv.writer(err).writerow([done.source, done.error])
            _fsync(err)
            errors_size = err.tell()
        entry = {**asdict(done), "out_size": out_size, "errors_size": errors_size}
        with open(self.journal_path, "a", encoding="utf-8", errors="surrogateescape") as j:
            j.write(json.dumps(entry) + "\n")
            _fsync(j)
        self.committed[done.source] = entry

    def close(self) -> None:
        for path, f, _ in self._staged.values():
            f.close()
        self._staged.clear()
        shutil.rmtree(self.staging, ignore_errors=True)
