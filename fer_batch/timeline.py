"""Reading a run's timeline CSV: whole (:func:`read_timeline`) or one source at a time (:class:`Timeline`).

The summary, the charts and the report are made per source, so they read the timeline per source: memory stays
about one source's rows (plus a chunk of the file) however many sources an archive holds. That relies on what
:mod:`~fer_batch.sinks` guarantees: each source's rows are contiguous in the file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, UsageError
from .labels import EMOTIONS

#: Rows parsed at a time when a timeline is streamed (about 5 MB of DataFrame).
CHUNK_ROWS = 20_000


def _csv_options() -> dict:
    # Int64 (nullable): ids and boxes are whole numbers, empty on a frame without a face.
    whole = {c: "Int64" for c in ("face_id", "x", "y", "w", "h")}
    return dict(dtype={"source": str, "media": str, "emotion": str, **whole}, keep_default_na=False,
                na_values={c: [""] for c in ("time_s", "face_id", "x", "y", "w", "h", "det_score", "confidence",
                                             *EMOTIONS)},
                encoding="utf-8", encoding_errors="surrogateescape")


def read_timeline(path: str | Path):
    """The timeline CSV as a DataFrame with its documented dtypes (source names kept exactly as written);
    :class:`~fer_batch.errors.UsageError` for a path that is no timeline CSV (missing, a folder, another file)."""
    import pandas as pd

    check_timeline_file(path)
    return pd.read_csv(path, **_csv_options())


def check_timeline_file(path) -> None:
    """:class:`~fer_batch.errors.UsageError` unless ``path`` is a file whose header holds a timeline's columns:
    the summary CSV or the errors CSV given instead (an easy slip) failed deep in pandas (KeyError: 'emotion'), or
    gave an empty summary. Read as pandas reads it (a .gz timeline too); what is not a path (an open file) is left
    to pandas."""
    import pandas as pd

    from .records import COLUMNS

    if not isinstance(path, (str, os.PathLike)):
        return
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"timeline {str(path)!r}: {'a folder' if path.is_dir() else 'no such file'}; give the "
                         "timeline CSV a run wrote (its --out)")
    try:
        if path.suffix.lower() not in (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar"):
            with open(path, "rb") as f:
                if b"\0" in f.read(4096):  # a photo's bytes, say: text has no NUL
                    raise ValueError("binary")
        header = list(pd.read_csv(path, nrows=0, encoding="utf-8", encoding_errors="surrogateescape").columns)
    except pd.errors.EmptyDataError:
        header, shown = None, "an empty file"
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError, OSError, EOFError):
        header, shown = None, "binary data, not a CSV"
    missing = [c for c in READ_COLUMNS if header is None or c not in header]
    if missing:
        if header is not None:
            shown = f"its first line has {', '.join(map(str, header[:8]))[:120]!r}"
        raise UsageError(f"timeline {str(path)!r} is not a timeline CSV ({shown}; a timeline has "
                         f"{', '.join(COLUMNS[:6])}, ...): give the --out CSV of a run, not its summary or errors "
                         "file")


@dataclass
class Totals:
    """What the whole timeline adds up to, for headlines: sources, rows, and face detections by top emotion."""

    sources: int = 0
    rows: int = 0
    emotions: Counter = field(default_factory=Counter)

    COLUMNS = ("source", "face_id", "emotion")  # all that :meth:`add` reads

    @property
    def face_detections(self) -> int:
        return sum(self.emotions.values())

    def emotion_counts(self) -> list[int]:
        """Face detections per top emotion, in :data:`~fer_batch.labels.EMOTIONS` order."""
        return [self.emotions.get(e, 0) for e in EMOTIONS]

    def add(self, rows) -> None:
        """Count one source's rows."""
        self.sources += 1
        self.rows += len(rows)
        self.emotions.update(rows["emotion"][rows["face_id"].notna()].tolist())


class Timeline:
    """A run's timeline, one source at a time: streamed from its CSV (:meth:`from_csv`) or grouped from a DataFrame
    already in memory (:meth:`from_frame`, for library callers and tests)."""

    def __init__(self, groups):
        self._groups = groups  # (columns or None) -> a fresh iterator of (source, rows)
        self._totals = None

    @classmethod
    def from_csv(cls, path: str | Path, chunk_rows: int = CHUNK_ROWS) -> Timeline:
        from .config import check_count

        check_count("chunk_rows", chunk_rows)
        check_timeline_file(path)  # at the call, not at the first pass
        return cls(lambda columns: _stream(Path(path), chunk_rows, columns))

    @classmethod
    def from_frame(cls, df) -> Timeline:
        return cls(lambda columns: _grouped(df))

    def by_source(self) -> Iterator[tuple[str, object]]:
        """(source, its rows as a DataFrame), in the timeline's order; each call reads the timeline again. A pass
        that reaches the end also counts the :class:`Totals`, so that :meth:`totals` needs no pass of its own."""
        totals = Totals()
        for source, rows in self._groups(None):
            totals.add(rows)
            yield source, rows
        self._totals = totals

    def media(self) -> Iterator[tuple[str, str]]:
        """(source, its media), in the timeline's order: a pass over those two columns alone."""
        for source, rows in self._groups(("source", "media")):
            yield source, rows["media"].iat[0]

    def totals(self) -> Totals:
        """:class:`Totals` of the whole timeline (counted by the first whole pass, or by one over the three columns
        it needs)."""
        if self._totals is None:
            totals = Totals()
            for _, rows in self._groups(Totals.COLUMNS):
                totals.add(rows)
            self._totals = totals
        return self._totals


def _grouped(df) -> Iterator[tuple[str, object]]:
    """(source, its rows) of a DataFrame, in order of first appearance, sources told apart as Python tells strings
    apart: pandas hashes names that hold undecodable bytes (lone surrogates, as the timeline is read) alike, and its
    ``groupby("source")`` merged "caf\\udce9 1.jpg" into "caf\\udce9 2.jpg"."""
    import numpy as np

    codes: dict[str, int] = {}
    keys = np.fromiter((codes.setdefault(s, len(codes)) for s in df["source"]), dtype=np.int64, count=len(df))
    names = list(codes)
    for code, rows in df.groupby(keys, sort=False):
        yield names[code], rows


#: The columns that the summary, charts and report read from a caller's DataFrame.
READ_COLUMNS = ("source", "media", "frame", "time_s", "face_id", "emotion", *EMOTIONS)


def as_timeline(timeline) -> Timeline:
    """A :class:`Timeline` from what the library's callers pass: a Timeline, a DataFrame, or a CSV path;
    :class:`~fer_batch.errors.UsageError` for anything else, a missing file or a DataFrame without the columns."""
    import os

    if isinstance(timeline, Timeline):
        return timeline
    if isinstance(timeline, (str, os.PathLike)):
        return Timeline.from_csv(timeline)
    if hasattr(timeline, "groupby") and hasattr(timeline, "columns"):
        missing = [c for c in READ_COLUMNS if c not in timeline.columns]
        if missing:  # else a KeyError from deep in pandas
            raise UsageError(f"timeline: the DataFrame lacks the column(s) {', '.join(missing)}; make it with "
                             "pd.DataFrame([r.to_row() for r in records], columns=fer_batch.records.COLUMNS), or "
                             "read a run's CSV with read_timeline(path)")
        return Timeline.from_frame(timeline)
    raise UsageError(f"timeline: expected a Timeline, a DataFrame or a CSV path, not {type(timeline).__name__}")


def _stream(path: Path, chunk_rows: int, columns=None) -> Iterator[tuple[str, object]]:
    """Each source's rows, cut from the file's chunks where the source changes. A source that runs over several
    chunks is kept as a list of pieces and joined once it ends (joining chunk by chunk would copy a long video's rows
    over and over). A source whose rows come back after another's is an :class:`~fer_batch.errors.InputError`:
    fer-batch never writes one, and summarising it as two sources would be wrong."""
    import numpy as np
    import pandas as pd

    pending: list = []  # pieces of the source that the last chunk ended in
    seen: set[int] = set()  # hashes of the sources already yielded (names could take as much memory as a chunk)

    def finished():
        rows = pending[0] if len(pending) == 1 else pd.concat(pending)
        name = rows["source"].iat[0]
        if hash(name) in seen:
            raise InputError(str(path), f"the rows of source {name!r} are not all together (again from data row "
                                        f"{rows.index[0] + 1}, the header not counted); fer-batch writes each "
                                        "source's rows together: was this file joined from several timelines? Read "
                                        "it whole with read_timeline()")
        seen.add(hash(name))
        return name, rows

    with pd.read_csv(path, chunksize=chunk_rows, usecols=columns, **_csv_options()) as reader:
        for chunk in reader:
            if chunk.empty:  # a timeline of a run where every file failed: the header only
                continue
            names = chunk["source"].to_numpy()
            cuts = [0, *(np.flatnonzero(names[1:] != names[:-1]) + 1).tolist(), len(names)]
            for start, stop in zip(cuts[:-1], cuts[1:]):
                if pending and pending[0]["source"].iat[0] != names[start]:
                    yield finished()
                    pending = []
                pending.append(chunk.iloc[start:stop])
    if pending:
        yield finished()
