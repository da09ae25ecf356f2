"""Counted nouns and file names as screens show them, so that every screen (progress lines, the report, charts,
model cards) says "1 frame" and "2,000 frames", and names a file, the same way."""

from __future__ import annotations

import re


def count(n, noun: str, *, grouped: bool = True, plural: str | None = None) -> str:
    """``count(1, "frame")`` is "1 frame", ``count(2000, "frame")`` "2,000 frames" ("2000 frames" with
    ``grouped=False``, for lines that scripts parse); ``plural`` for a noun that does not just take an "s"
    ("annotated copies"); a figure that is not a whole number (a card's "?") is shown as it is, with the plural."""
    shown = f"{n:,}" if isinstance(n, int) and grouped else str(n)
    return f"{shown} {noun if n == 1 else plural or noun + 's'}"


def shown_name(name: str) -> str:
    """A file name as a terminal line, chart or page shows it: bytes that are not UTF-8 (Python's lone surrogates,
    which the CSVs keep so that they name the file exactly) and control characters as ``\\xNN`` escapes, which a
    font can draw and a UTF-8 page can hold, and which cannot move a terminal's cursor (a carriage return in a name
    had printed "fine.jpg: empty file" over the real name; an escape sequence can recolour or erase the line)."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def shortened(name: str, width: int, head: int = 0) -> str:
    """``name`` in at most ``width`` characters: a long one keeps its end (the file's own name) after "…", and its
    first ``head`` characters before it (where the folder tells two long names apart)."""
    if len(name) <= width:
        return name
    head = min(head, width - 2)
    return name[:head] + "…" + name[len(name) - (width - head - 1):]
