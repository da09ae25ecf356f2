"""Incremental CSV writers with per-source commits and a journal that makes ``--resume`` exact.

Rows reach the timeline as they arrive (flushed per batch). One source at a time streams straight into it; with
several workers, the rows of sources that decode meanwhile go to staging files and are appended, whole, once the
streaming source ends, so each source's rows stay contiguous. When a source ends, the timeline and errors files are
fsynced and a journal line records their sizes. A resumed run truncates both files back to the last journalled
sizes (dropping the rows of a source cut off mid-way), skips the committed sources and redoes the rest, so its
final CSV equals an uninterrupted run's. ``--retry-failed`` (:func:`drop_failed`) first takes the failed sources out
of all three files, so those are redone too.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from .config import OPTION_NAMES
from .errors import OutputError, UsageError
from .records import COLUMNS, ERROR_COLUMNS, FaceRecord, SourceDone

JOURNAL_VERSION = 1


def _fsync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _limited_lines(f, size: int) -> Iterator[bytes]:
    """The lines of the next ``size`` bytes of a binary file (quoted CR/LF inside names are rejoined by csv)."""
    while size > 0:
        line = f.readline(size)
        if not line:
            return
        size -= len(line)
        yield line


def _open_csv(path: Path, mode: str):
    # surrogateescape keeps undecodable file-name bytes exactly as they are on disk.
    return open(path, mode, newline="", encoding="utf-8", errors="surrogateescape")


def journal_path(out: Path) -> Path:
    """The hidden journal beside a timeline: ``.OUT.journal``."""
    return Path(out).with_name(f".{Path(out).name}.journal")


def read_journal(out: Path, settings: dict) -> list[dict]:
    """The journal of the run that wrote ``out``: its header, then one entry per committed source (a line cut short
    by a kill ends it). Reads only; :class:`UsageError` where ``out`` cannot be resumed with ``settings``."""
    path = pending_journal(out)
    if not path.exists():
        raise UsageError(f"--resume: {out} has no journal ({path.name}); it was not written "
                         "by a fer-batch run that can be resumed. Use --overwrite to start again")
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a kill: everything after it is uncommitted
    if not entries or entries[0].get("version") != JOURNAL_VERSION:
        raise UsageError(f"--resume: the journal {path} is unreadable; use --overwrite")
    previous = entries[0].get("settings", {})
    if _comparable(previous) != _comparable(settings):
        raise UsageError(f"--resume: {_differences(previous, settings)}; resume with the same options, or use "
                         "--overwrite")
    return entries


def _header_bytes(columns) -> int:
    """Bytes of a CSV's header line as the run writes it (CRLF)."""
    return len((",".join(columns) + "\r\n").encode("utf-8"))


def check_resumable(out: Path, errors_path: Path, entries: list[dict]) -> None:
    """:class:`UsageError` where the files of the run (``entries``: :func:`read_journal`'s) cannot be resumed as
    they are: the timeline gone, or either file shorter than the journal says was written (truncating to the
    journal's size would pad a file cut short since, a copy stopped early, with NUL bytes, and the sources whose rows
    were cut would pass for done). An errors file that held its header only may be gone: it is made again. Reads
    only, so that a run is refused before any model loads."""
    last = entries[-1]
    for path, key in ((out, "out_size"), (errors_path, "errors_size")):
        if not path.exists():
            if path == errors_path and last[key] <= _header_bytes(ERROR_COLUMNS):
                continue
            raise UsageError(f"--resume: {path} is missing (it held {last[key]:,} bytes); put it back, or start "
                             "again with --overwrite")
        size, committed = path.stat().st_size, last[key]
        if size < committed:
            raise UsageError(f"--resume: {path} holds {size:,} bytes, fewer than the {committed:,} its journal "
                             "says were written: it was cut short or replaced since that run, so the rows of "
                             "the files it had done are not all there; start again with --overwrite")


#: Settings that follow from the model file and its card.
FROM_MODEL = ("model_sha256", "model_bytes", "tflite_quantization", "flip_margin")
#: Settings that change with an option, so are not named beside it.
FOLLOW = {"model": FROM_MODEL, "detector": ("auto_detector",), "runtime": ("tflite_quantization", "tflite_near_tie")}


def _comparable(settings: dict) -> dict:
    """``settings`` as far as they change the rows: each input folder's one trailing slash dropped (``clips/``, as
    tab completion types it, and ``clips`` name the same files, under the same names), and with ``--detector auto``
    a ``--min-score`` below the bar auto keeps anyway counted as that bar (it changes nothing, as the run says)."""
    from .detect_auto import AGREE

    settings = dict(settings)
    paths = settings.get("paths")
    if isinstance(paths, list):
        settings["paths"] = [p[:-1] if len(p) > 1 and p.endswith(os.sep) and not p.endswith(os.sep * 2) else p
                             for p in paths]
    score = settings.get("min_score")
    if settings.get("detector") == "auto" and isinstance(score, (int, float)) and score < AGREE:
        settings["min_score"] = AGREE
    return settings


def _differences(previous: dict, now: dict) -> str:
    """What differs between the earlier run's settings and this one's, as a user would say it."""
    # Compared as they act, shown as typed (`clips/` stays `clips/`).
    same_previous, same_now = _comparable(previous), _comparable(now)
    changed = sorted(k for k in set(previous) | set(now) if same_previous.get(k) != same_now.get(k))
    following = {k for option, keys in FOLLOW.items() if option in changed for k in keys}
    changed = [k for k in changed if k not in following]
    said = [f"{OPTION_NAMES[k]} was {_shown(k, previous.get(k))}, now {_shown(k, now.get(k))}"
            for k in changed if k in OPTION_NAMES]
    rest = [k for k in changed if k not in OPTION_NAMES]
    if set(rest) & {"model_sha256", "model_bytes"}:
        said.append("the model file is not the network the run started with (a newer packaged model, or a file "
                    "retrained in place)")
    if set(rest) & {"tflite_quantization", "flip_margin"}:
        said.append("the model's card now asks for another way to run it (" +
                    ", ".join(k for k in rest if k in ("tflite_quantization", "flip_margin")) + ")")
    other = [k for k in rest if k not in FROM_MODEL]
    if other:  # thresholds of this version of fer-batch (auto_detector, tflite_near_tie) or a field it adds
        said.append(f"this version of fer-batch runs differently from the one that wrote it ({', '.join(other)})")
    return f"the earlier run differs: {'; '.join(said)}"


def _shown(key: str, value) -> str:
    """A setting as typed (10, not 10.0), saying when it is the option's default: an option the user left out
    differs too, and should not read as one they typed."""
    import dataclasses

    from .config import AnalyzeConfig

    if value is None:
        return "not given"
    if isinstance(value, list):
        return " ".join(map(str, value))
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    defaults = {f.name: f.default for f in dataclasses.fields(AnalyzeConfig)}
    return f"{shown} (the default)" if key in defaults and defaults[key] == value else shown


def lock_path(out: Path) -> Path:
    return Path(out).with_name(f".{Path(out).name}.lock")


def take_lock(out: Path, option: str = "--out", path: Path | None = None):
    """The open lock file of ``out`` (``path``, by default :func:`lock_path`), locked (``flock``) for this process:
    two runs writing one timeline would interleave their rows and journals (two trainings one run folder, their
    histories and checkpoints). The kernel drops the lock when the process ends, however it ends, so a killed run
    never leaves it held. :class:`UsageError` naming ``option`` and the other run's process when it is taken, or
    where the lock file cannot be made."""
    import fcntl

    path = lock_path(out) if path is None else path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{option} {str(out)!r}: its lock file {str(path)!r} cannot be made "
                         f"({exc.strerror or exc})") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise UsageError(f"{option} {str(out)!r} is being written by another fer-batch run (process {holder}); wait "
                         f"for it to end, or give another {option}") from None
    except OSError as exc:  # ENOLCK and the like: a network filesystem without locks
        f.close()
        raise UsageError(f"{option} {str(out)!r}: its lock file {str(path)!r} cannot be locked ({exc.strerror or exc}),"
                         f" as on a network filesystem without locks; give an {option} on a local disk") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def check_unlocked(out: Path) -> None:
    """:class:`UsageError` now, before any model loads, when another run holds the lock of ``out``
    (:func:`take_lock`)."""
    if lock_path(out).exists():
        take_lock(out).close()  # closing releases it at once


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable; a no-op where the file system cannot (SMB and some
    FUSE mounts refuse fsync on a folder)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _rewritten(path: Path) -> tuple[Path, Path]:
    """(where a retry rewrites ``path``, the real file it replaces): beside the real file, through a symlinked
    ``--out`` too, so that ``os.replace`` stays on its disk."""
    real = Path(os.path.realpath(path))
    return real.with_name(f".{real.name}.retry"), real


def _commit_marker(out: Path) -> Path:
    journal = Path(os.path.realpath(journal_path(out)))
    return journal.with_name(f"{journal.name}.commit")


def _retry_files(out: Path, errors_path: Path) -> tuple[list[tuple[Path, Path]], Path]:
    """A retry's (rewritten file, the file it replaces) pairs -- timeline, errors file, journal -- and its commit
    marker. All are derived from the paths, never stored, so that a later run started from another folder, or
    through another path to ``--out``'s folder, finds them. (Keyed on ``--out``'s own name: a run naming a
    symlinked ``--out``'s target instead is another output, as its journal is.)"""
    return [_rewritten(p) for p in (out, errors_path, journal_path(out))], _commit_marker(out)


def _pending_retries(entries: list[dict]) -> list[str]:
    """The sources a --retry-failed run took out of the output (its journal's header names them) and that are not
    done again yet."""
    done = {e["source"] for e in entries[1:]}
    return [s for s in entries[0].get("retrying", ()) if s not in done]


def drop_failed(out: Path, errors_path: Path, entries: list[dict], sources: set[str]) -> list[dict]:
    """``--retry-failed``: the output without the failed ``sources`` (their rows, error rows and journal lines), so
    that the resumed run analyses them again; returns the journal's new entries.

    The three files are rewritten beside the originals (fsynced), then a commit marker is written, then they are
    moved into place (:func:`finish_retry`): a kill before the marker leaves the old output (and the next open
    deletes the rewritten files), a kill after it a retry that the next open finishes. Never a journal that does not
    describe its timeline.
    """
    pairs, marker = _retry_files(out, errors_path)
    (t_new, t_old), (e_new, e_old), (j_new, _) = pairs
    # The header names the sources being retried until they are done again, for a resume after a kill (_reopen).
    kept = [{**entries[0], "retrying": sorted({*_pending_retries(entries), *sources})}]
    try:
        with open(t_old, "rb") as src, open(t_new, "wb") as dst, open(e_old, "rb") as esrc, open(e_new, "wb") as edst:
            dst.write(src.read(entries[0]["out_size"]))
            edst.write(esrc.read(entries[0]["errors_size"]))
            last = entries[0]
            for entry in entries[1:]:
                rows, error_rows = entry["out_size"] - last["out_size"], entry["errors_size"] - last["errors_size"]
                last = entry
                if entry.get("error") and entry["source"] in sources:
                    src.seek(rows, os.SEEK_CUR)
                    esrc.seek(error_rows, os.SEEK_CUR)
                    continue
                shutil.copyfileobj(_Limited(src, rows), dst)
                shutil.copyfileobj(_Limited(esrc, error_rows), edst)
                kept.append({**entry, "out_size": dst.tell(), "errors_size": edst.tell()})
            _fsync(dst)
            _fsync(edst)
        with open(j_new, "w", encoding="utf-8", errors="surrogateescape") as j:
            for entry in kept:
                j.write(json.dumps(entry) + "\n")
            _fsync(j)
        for new, old in pairs:
            shutil.copymode(old, new)
        for folder in {new.parent for new, _ in pairs}:  # the rewritten files' entries before the marker's
            _fsync_dir(folder)
    except BaseException:
        for new, _ in pairs:
            new.unlink(missing_ok=True)
        raise
    # The commit point. From here on nothing is rolled back: whatever stops this run, the next open finishes it.
    with open(marker, "w") as m:
        _fsync(m)
    _fsync_dir(marker.parent)
    finish_retry(out, errors_path)
    return kept


def finish_retry(out: Path, errors_path: Path) -> None:
    """Complete a :func:`drop_failed` whose commit marker is on disk (each move once: a file moved is gone from
    beside its destination), or delete the rewritten files of one that never reached it."""
    pairs, marker = _retry_files(out, errors_path)
    if pairs[0][0].is_dir():  # the work folder of the first version of --retry-failed (never released)
        shutil.rmtree(pairs[0][0])
    if marker.exists():
        for new, old in pairs:
            if new.exists():
                os.replace(new, old)
        for folder in {old.parent for _, old in pairs}:
            _fsync_dir(folder)
        marker.unlink()
        _fsync_dir(marker.parent)
    else:
        for new, _ in pairs:
            new.unlink(missing_ok=True)


def pending_journal(out: Path) -> Path:
    """The journal that describes ``out``: its rewritten one while a committed retry waits to be finished."""
    j_new, _ = _rewritten(journal_path(out))
    return j_new if _commit_marker(out).exists() and j_new.exists() else journal_path(out)


class _Limited:
    """The next ``size`` bytes of a binary file, for ``shutil.copyfileobj``."""

    def __init__(self, f, size: int):
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data


class RunWriter:
    """Owns the timeline CSV, the errors CSV, the staging folder and the journal of one run (locked for it)."""

    def __init__(self, out: Path, errors_path: Path, *, resume: bool, settings: dict, retry: frozenset = frozenset()):
        """``retry``: sources to analyse again where the run being resumed failed on them (``--retry-failed``)."""
        self.out = Path(out)
        self._lock = take_lock(self.out)  # before any file of the run is touched
        try:
            with self._failing_as_output():
                self._open(errors_path, resume, settings, retry)
        except BaseException:
            self._lock.close()
            raise

    def _open(self, errors_path: Path, resume: bool, settings: dict, retry: frozenset) -> None:
        self.errors_path = Path(errors_path)
        self.journal_path = journal_path(self.out)
        self._journal_part = self.journal_path.with_name(f"{self.journal_path.name}.part")  # _reopen's rewrite
        self.staging = self.out.with_name(f".{self.out.name}.parts")
        self.committed: dict[str, dict] = {}
        self.ranges: dict[str, tuple[int, int]] = {}  # committed source -> byte range of its rows in the timeline
        self._fresh: list[str] = []  # sources committed since the last committed_since()
        self._staged: dict[str, tuple[Path, object, csv.writer]] = {}
        self._direct: str | None = None  # the source whose rows go straight into the timeline
        self._waiting: list[SourceDone] = []  # finished staged sources, appended after the direct one ends
        self._uncommitted_rows: dict[str, int] = {}
        self.rows_committed = 0  # rows of the sources this writer committed: what the timeline gained
        self._committed_size = 0  # the timeline's size at the last commit
        self._errors_size = 0  # the errors file's
        self.retried: list[str] = []  # failed sources taken out of the output for --retry-failed
        self.out.parent.mkdir(parents=True, exist_ok=True)
        finish_retry(self.out, self.errors_path)  # one that a kill cut short, before anything reads the files
        if resume and self.out.exists():
            self._reopen(settings, retry)
        else:
            self._start(settings)
        self.staging.mkdir(exist_ok=True)
        self._out = _open_csv(self.out, "a")
        # csv's default CRLF rows (RFC 4180): with LF rows a lone CR in a file name would go unquoted and split the
        # row for readers that treat CR as a line end (pandas does).
        self._out_rows = csv.writer(self._out)

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
        self._committed_size, self._errors_size = self.out.stat().st_size, self.errors_path.stat().st_size
        self._journal_part.unlink(missing_ok=True)  # a rewrite that a kill cut short (see _reopen): not this run's
        if self.staging.exists():
            shutil.rmtree(self.staging)

    def _reopen(self, settings: dict, retry: frozenset) -> None:
        entries = read_journal(self.out, settings)
        check_resumable(self.out, self.errors_path, entries)
        if not self.errors_path.exists():  # it held its header only (check_resumable)
            with _open_csv(self.errors_path, "w") as f:
                csv.writer(f).writerow(ERROR_COLUMNS)
                _fsync(f)
        # Failures a --retry-failed run took out of the output and was killed before analysing again are still
        # retries: its journal's header names them (drop_failed).
        pending = _pending_retries(entries)
        newly = [e["source"] for e in entries[1:] if e.get("error") and e["source"] in retry]
        if newly:
            entries = drop_failed(self.out, self.errors_path, entries, set(newly))
        self.retried = pending + newly
        last = entries[0]
        for entry in entries[1:]:
            self.committed[entry["source"]] = entry
            self.ranges[entry["source"]] = (last["out_size"], entry["out_size"])
            last = entry
        for path, size in ((self.out, last["out_size"]), (self.errors_path, last["errors_size"])):
            with open(path, "r+b") as f:
                f.truncate(size)
                _fsync(f)
        self._committed_size, self._errors_size = last["out_size"], last["errors_size"]
        # Rewrite the journal without any torn tail so later appends stay parseable: beside it, then over it (a
        # kill in between leaves the old journal, whose torn tail the next read drops again).
        with open(self._journal_part, "w", encoding="utf-8", errors="surrogateescape") as j:
            for entry in entries:
                j.write(json.dumps(entry) + "\n")
            _fsync(j)
        os.replace(self._journal_part, self.journal_path)
        if self.staging.exists():
            shutil.rmtree(self.staging)

    # -- streaming ---------------------------------------------------------------------------------------
    def write(self, records: list[FaceRecord]) -> None:
        """Append records to the timeline (or, for a source decoded alongside the streaming one, to its staging
        file) and flush; they count as committed only when their source ends (:meth:`commit`)."""
        with self._failing_as_output():
            self._write(records)

    def commit(self, done: SourceDone) -> list[SourceDone]:
        """Record a finished source: its rows are in (or appended to) the timeline, its error in the errors file,
        both fsynced, then a journal line. A staged source waits while another streams into the timeline.

        Returns the sources committed by this call (none, or ``done`` and any that waited for it): only those count
        as done, since an interruption before their commit leaves them for ``--resume``.
        """
        with self._failing_as_output():
            return self._commit(done)

    @contextlib.contextmanager
    def _failing_as_output(self):
        """A failure to write (a full disk, the folder removed) as an :class:`OutputError` naming ``--out``."""
        try:
            yield
        except OSError as exc:
            raise OutputError("--out", self.out, exc, timeline_complete=False) from exc

    def _write(self, records: list[FaceRecord]) -> None:
        touched = set()
        for rec in records:
            self._uncommitted_rows[rec.source] = self._uncommitted_rows.get(rec.source, 0) + 1
            if self._direct is None and rec.source not in self._staged:
                self._direct = rec.source
            if rec.source == self._direct:
                self._out_rows.writerow(rec.to_row())
                touched.add(None)
                continue
            staged = self._staged.get(rec.source)
            if staged is None:
                name = hashlib.sha1(rec.source.encode("utf-8", "surrogateescape")).hexdigest()[:16] + ".csv"
                path = self.staging / name
                f = _open_csv(path, "w")
                staged = self._staged[rec.source] = (path, f, csv.writer(f))
            staged[2].writerow(rec.to_row())
            touched.add(rec.source)
        for source in touched:
            (self._out if source is None else self._staged[source][1]).flush()

    def _commit(self, done: SourceDone) -> list[SourceDone]:
        if done.source == self._direct:
            self._direct = None
            self._journal(done)
            waiting, self._waiting = self._waiting, []
            for other in waiting:
                self._commit_staged(other)
            return [done, *waiting]
        if self._direct is not None:
            self._waiting.append(done)
            return []
        self._commit_staged(done)
        return [done]

    def _commit_staged(self, done: SourceDone) -> None:
        staged = self._staged.pop(done.source, None)
        if staged is not None:
            path, f, _ = staged
            f.close()
            with _open_csv(path, "r") as src:
                shutil.copyfileobj(src, self._out)
            path.unlink()
        self._journal(done)

    def _journal(self, done: SourceDone) -> None:
        """A source is committed once its journal line is on disk, and only then counted: a failure before that
        leaves its rows and error row past the committed sizes, for :meth:`close` (or ``--resume``) to drop."""
        _fsync(self._out)
        start, out_size = self._committed_size, self._out.tell()
        with _open_csv(self.errors_path, "a") as err:
            if done.error:
                csv.writer(err).writerow([done.source, done.error])
            _fsync(err)
            errors_size = err.tell()
        entry = {**asdict(done), "out_size": out_size, "errors_size": errors_size}
        with open(self.journal_path, "a", encoding="utf-8", errors="surrogateescape") as j:
            j.write(json.dumps(entry) + "\n")
            _fsync(j)
        self._committed_size, self._errors_size = out_size, errors_size
        self.rows_committed += self._uncommitted_rows.pop(done.source, 0)
        self.ranges[done.source] = (start, out_size)
        self._fresh.append(done.source)
        self.committed[done.source] = entry

    def committed_since(self) -> list[str]:
        """The sources committed since the last call, in commit order (a staged source commits only after the one
        streaming into the timeline ends, so one :meth:`commit` can commit none or several)."""
        fresh, self._fresh = self._fresh, []
        return fresh

    def rows(self, source: str) -> Iterator[FaceRecord]:
        """The committed rows of ``source``, read back from the timeline one at a time (in frame order), so a sink
        that runs after the commit (annotated media) holds no more than a frame's rows whatever the length."""
        start, end = self.ranges[source]
        with open(self.out, "rb") as f:
            f.seek(start)
            remaining = end - start
            lines = (line.decode("utf-8", "surrogateescape") for line in _limited_lines(f, remaining))
            for row in csv.reader(lines):
                yield FaceRecord.from_row(row)

    def release(self) -> None:
        """Let another run write ``out`` (after ``close(keep_lock=True)``). Releasing twice does nothing."""
        self._lock.close()

    def close(self, *, keep_lock: bool = False) -> None:
        """Close every file, and release the lock unless ``keep_lock`` (a run keeps it while it makes the summary,
        charts and report from the finished timeline: another run must not rewrite it under them). The rows of
        sources that never ended are dropped, from the timeline and the errors file (truncated back to the last
        commit) and from staging: the timeline then holds whole sources only, ``rows`` of them this run. (A killed
        run cannot do this; its torn rows stay past the journalled size until ``--resume`` drops them.)"""
        try:
            self._out.close()  # flushes: on a full disk that fails, and what it held is dropped with the rest below
        except OSError:
            pass
        for path, size in ((self.out, self._committed_size), (self.errors_path, self._errors_size)):
            try:
                if path.stat().st_size > size:
                    os.truncate(path, size)
            except OSError:
                pass  # the folder went away: --resume drops a torn tail by the journal anyway
        for path, f, _ in self._staged.values():
            try:
                f.close()
            except OSError:
                pass
        self._staged.clear()
        shutil.rmtree(self.staging, ignore_errors=True)
        if not keep_lock:
            self.release()
