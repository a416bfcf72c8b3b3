"""What the daemon tells the outside about itself: ``health.json`` (SPEC 5.11).

This module only turns a :class:`Health` into bytes and back, through the one converter of
the health-file boundary; :mod:`agent.healthwriter` keeps it up to date in the daemon and
:mod:`agent.healthfile` reads it for ``check``, ``status`` and ``watchdog``.

No field can hold a secret: errors are the agent's own messages (``str()`` of an
:class:`~agent.errors.AgentError` never quotes one), and there is no token, key or code.
"""

from __future__ import annotations

import datetime
import json
import math

import attrs
import cattrs

from agent import jsonfile

HEALTH_FILE = "health.json"
# An error message longer than this is cut: the file stays small and a line stays a line.
MAX_ERROR_CHARS = 500


class HealthDamaged(ValueError):
    """health.json does not hold what the daemon writes; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"health.json is damaged ({reason})")
        self.reason = reason


@attrs.frozen
class Health:
    """The daemon's account of itself; timestamps are UTC.

    ``last_heartbeat_at`` is the gateway's ``receivedAt`` of the last acknowledged heartbeat
    (the gateway's clock); ``started_at`` and ``last_attempt_at`` (when the last heartbeat
    was sent, acknowledged or not) are the node's clock.
    """

    pid: int
    started_at: datetime.datetime
    heartbeat_interval_seconds: float
    last_heartbeat_at: datetime.datetime | None = None
    last_attempt_at: datetime.datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    session_expires_at: datetime.datetime | None = None

    def __attrs_post_init__(self) -> None:
        if self.pid <= 0:
            raise ValueError("pid must be positive")
        if self.consecutive_failures < 0:
            raise ValueError("consecutive_failures must not be negative")
        interval = self.heartbeat_interval_seconds
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError("heartbeat_interval_seconds must be a positive number")

    def acknowledged_at(self) -> datetime.datetime | None:
        """When the last acknowledged heartbeat happened, on the node's clock when known.

        With no failure since, the last attempt *is* that heartbeat: its ``last_attempt_at``
        (our clock) then measures its age without the gateway's clock skew. After failures
        only the gateway's ``receivedAt`` is left.
        """
        if self.last_heartbeat_at is None:
            return None
        if self.consecutive_failures == 0 and self.last_attempt_at is not None:
            return self.last_attempt_at
        return self.last_heartbeat_at

    def heartbeat_age_seconds(self, now: datetime.datetime) -> float | None:
        """Seconds since the last acknowledged heartbeat, None before the first; a time
        ahead of ``now`` (the gateway's clock, when it is ahead) counts as just now."""
        acknowledged = self.acknowledged_at()
        return None if acknowledged is None else age_seconds(now, acknowledged)


def age_seconds(now: datetime.datetime, then: datetime.datetime) -> float:
    return max(0.0, (now - then).total_seconds())


def shorten_error(text: str) -> str:
    """One line of at most :data:`MAX_ERROR_CHARS` characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


# The one converter of the health-file boundary.
_converter = jsonfile.strict_converter()


def encode_health(health: Health) -> bytes:
    return jsonfile.encode(_converter, health)


def decode_health(raw: bytes) -> Health:
    """The health in ``raw``, or :class:`HealthDamaged` naming what is wrong."""
    try:
        return jsonfile.decode(_converter, raw, Health)
    except jsonfile.DAMAGED as exc:
        raise HealthDamaged(_reason(exc)) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError) and exc.exceptions:
        return _reason(exc.exceptions[0])
    if isinstance(exc, json.JSONDecodeError):
        return "not JSON"
    if isinstance(exc, RecursionError):
        return "nested too deep"
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]}" if exc.args else "a field is missing"
    text = str(exc)
    return shorten_error(text)[:80] if text else type(exc).__name__
