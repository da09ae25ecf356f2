"""The records a run produces, and the timeline CSV's columns (defined here once)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .labels import EMOTIONS

#: Timeline CSV columns, in order (documented in README.md, "Output columns").
COLUMNS: tuple[str, ...] = (
    "source", "media", "frame", "time_s", "face_id", "x", "y", "w", "h", "det_score",
    *EMOTIONS, "emotion", "confidence",
)
ERROR_COLUMNS: tuple[str, ...] = ("source", "error")
#: Decimal places of the probabilities in the timeline CSV.
PROB_PLACES = 6


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One face in one analysed frame, or (face fields None) an analysed frame with no face."""

    source: str
    media: str  # "image" or "video"
    frame: int
    time_s: float | None
    face_id: int | None = None
    x: int | None = None
    y: int | None = None
    w: int | None = None
    h: int | None = None
    det_score: float | None = None
    probs: tuple[float, ...] | None = None

    @property
    def has_face(self) -> bool:
        return self.face_id is not None

    @property
    def emotion(self) -> str | None:
        """The top class of the probabilities as the CSV stores them: a near-tie (closer than the CSV's places)
        goes to the first of the two, here, in the CSV's column and in the summary, report and copies that read
        the probabilities back alike."""
        return None if self.probs is None else _top([round(p, PROB_PLACES) for p in self.probs])

    @property
    def confidence(self) -> float | None:
        return None if self.probs is None else max(self.probs)

    def to_row(self) -> list:
        """Values in :data:`COLUMNS` order; None for empty cells."""
        t = None if self.time_s is None or not math.isfinite(self.time_s) else round(self.time_s, 4)
        stored = None if self.probs is None else [round(p, PROB_PLACES) for p in self.probs]
        conf = None if self.probs is None else round(self.confidence, PROB_PLACES)
        score = None if self.det_score is None else round(self.det_score, 4)
        return [self.source, self.media, self.frame, t, self.face_id, self.x, self.y, self.w, self.h, score,
                *(stored or [None] * len(EMOTIONS)), None if stored is None else _top(stored), conf]

    @classmethod
    def from_row(cls, row: list[str]) -> "FaceRecord":
        """The record of one timeline CSV row as :mod:`csv` reads it back (strings; empty cells are None)."""
        def num(value: str, kind=float):
            return None if value == "" else kind(float(value))

        n = len(EMOTIONS)
        face = row[4] != ""
        return cls(source=row[0], media=row[1], frame=int(row[2]), time_s=num(row[3]), face_id=num(row[4], int),
                   x=num(row[5], int), y=num(row[6], int), w=num(row[7], int), h=num(row[8], int),
                   det_score=num(row[9]), probs=tuple(float(v) for v in row[10:10 + n]) if face else None)


def _top(stored: list[float]) -> str:
    """The emotion of the highest stored probability; the first of a tie."""
    return EMOTIONS[max(range(len(stored)), key=stored.__getitem__)]


@dataclass(frozen=True, slots=True)
class SourceDone:
    """The end of one source: how many frames were analysed, and the error that stopped it, if any.

    A source can have both rows and an error (a video that broke off mid-stream): its rows are kept.
    """

    source: str
    media: str
    frames: int
    faces: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
