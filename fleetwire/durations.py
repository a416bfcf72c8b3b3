"""Durations as operators write them: ``500ms``, ``30s``, ``5m``, ``24h``, ``1h30m``, ``7d``, ``0``.

Shared by the three programs' command lines so they accept the same spellings.
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ``ValueError`` with a message naming the accepted forms."""
    spelled = text.strip()
    if spelled == "0":
        return 0.0
    position = 0
    total = 0.0
    for match in _PART.finditer(spelled):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(spelled):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, "
            "e.g. 500ms, 30s, 5m, 24h, 1h30m, 7d"
        )
    return total


def format_duration(seconds: float) -> str:
    """A short human spelling: ``45s``, ``12m``, ``3h``, ``2d``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h"
    return f"{whole // 86400}d"
