"""How fleetctl renders for a terminal: aligned tables, enum labels, times as ages.

Each command module builds its rows of strings; this module knows nothing of nodes or codes.
"""

from __future__ import annotations

import datetime
import enum
import unicodedata
from collections.abc import Iterable, Sequence

from fleetwire.durations import format_duration

ABSENT = "-"


def render(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """An aligned plain-text table, header first, two spaces between columns."""
    table = [tuple(headers), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def label(value: enum.Enum) -> str:
    """A wire enum without its type prefix, in words: ``CONNECTIVITY_NEVER_SEEN`` -> ``NEVER
    SEEN``. Every wire enum's first member is ``<PREFIX>UNSPECIFIED``, which names the prefix."""
    prefix = next(iter(type(value).__members__)).removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix).replace("_", " ")


def printable(text: str) -> str:
    """Names are stored verbatim, but a bidi override or a line separator in one could
    reorder or split the row an operator reads a fingerprint from: show those escaped."""
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cf", "Zl", "Zp", "Cc") else char
        for char in text
    )


def ago(then: datetime.datetime | None, now: datetime.datetime) -> str:
    """``12s ago``; ``never`` when absent. A time ahead of ours (clock skew) is ``0s ago``."""
    if then is None:
        return "never"
    return f"{format_duration(max(0.0, (now - then).total_seconds()))} ago"


def relative(then: datetime.datetime | None, now: datetime.datetime) -> str:
    """``in 3h`` for the future, ``2h ago`` for the past."""
    if then is None:
        return ABSENT
    seconds = (then - now).total_seconds()
    return f"in {format_duration(seconds)}" if seconds > 0 else ago(then, now)
