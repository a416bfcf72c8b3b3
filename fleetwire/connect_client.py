"""The client side of a Connect unary call, without I/O: what to send, how to read the answer.

The agent (Trio, async httpx) and fleetctl (sync httpx) each own their transport and map
its exceptions; both build requests and read answers here, so they agree on headers, on
error bodies and on ``Retry-After``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from fleetwire.codes import ConnectError

JSON = "application/json"
# The longest Retry-After a client honours: a gateway (or a proxy in front of it) asking
# for hours is wrong, and a node must not go quiet for that long.
MAX_RETRY_AFTER_SECONDS = 300.0


def request_headers(
    bearer: str | None = None, *, timeout_seconds: float | None = None
) -> dict[str, str]:
    """The headers of one unary JSON call (``Connect-Timeout-Ms`` when a deadline is set)."""
    headers = {"Content-Type": JSON, "Connect-Protocol-Version": "1"}
    if timeout_seconds is not None:
        headers["Connect-Timeout-Ms"] = str(max(1, int(timeout_seconds * 1000)))
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    return headers


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: whole or fractional seconds, capped
    at :data:`MAX_RETRY_AFTER_SECONDS`. ``None`` when absent or not a number of seconds
    (an HTTP date is ignored rather than trusted to a clock we cannot check)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def is_redirect(status: int) -> bool:
    """A 3xx is never followed: it could replay a secret to another host."""
    return 300 <= status < 400


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ConnectError:
    """The Connect error of a non-200 answer, with its ``Retry-After``."""
    return ConnectError.from_response(status, body, parse_retry_after(headers.get("Retry-After")))
