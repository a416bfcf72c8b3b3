"""The fleet table: what ``fleetctl nodes`` prints (and what ``demo`` shows)."""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Iterable

from fleetwire import messages as m
from fleetwire.durations import format_duration

HEADERS = ("ID", "NAME", "STATUS", "FINGERPRINT", "LAST SEEN", "CONNECTIVITY", "SKEW")


def _label(value: m.FleetNodeEnrollmentStatus | m.Connectivity) -> str:
    """``CONNECTIVITY_NEVER_SEEN`` -> ``NEVER SEEN``."""
    prefix = (
        "FLEET_NODE_ENROLLMENT_STATUS_"
        if isinstance(value, m.FleetNodeEnrollmentStatus)
        else "CONNECTIVITY_"
    )
    return value.name.removeprefix(prefix).replace("_", " ")


def _printable(text: str) -> str:
    """Names are stored verbatim, but a bidi override or a line separator in one could
    reorder or split the row an operator reads a fingerprint from: show those escaped."""
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cf", "Zl", "Zp", "Cc") else char
        for char in text
    )


def _ago(then: datetime.datetime | None, now: datetime.datetime) -> str:
    if then is None:
        return "never"
    return f"{format_duration(max(0.0, (now - then).total_seconds()))} ago"


def _skew(skew_ms: int | None) -> str:
    if skew_ms is None:
        return "-"
    seconds = round(skew_ms / 1000, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{seconds:+.1f}s"


def rows(nodes: Iterable[m.FleetNodeSummary], now: datetime.datetime) -> list[tuple[str, ...]]:
    return [
        (
            str(node.fleet_node_id),
            _printable(node.name),
            _label(node.enrollment_status),
            node.identity_fingerprint,
            _ago(node.last_seen_at, now),
            _label(node.connectivity),
            _skew(node.clock_skew_ms),
        )
        for node in nodes
    ]


def render(nodes: Iterable[m.FleetNodeSummary], now: datetime.datetime) -> str:
    """An aligned plain-text table, one line per node, header first."""
    table = [HEADERS, *rows(nodes, now)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )
