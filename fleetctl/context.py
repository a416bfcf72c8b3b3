"""What every command is handed: the admin client and the clock (both injected by tests)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Protocol

import attrs

from fleetctl.client import AdminClient

# SPEC 7: `events --follow` polls every 2 s.
FOLLOW_INTERVAL_SECONDS = 2.0


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@attrs.frozen
class Clock:
    """Wall time for "12s ago", and waiting between --follow polls. Tests pass their own,
    so a follow runs without sleeping and ages are exact."""

    now: Callable[[], datetime.datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep
    follow_interval_seconds: float = FOLLOW_INTERVAL_SECONDS


@attrs.frozen
class Context:
    client: AdminClient
    clock: Clock


class Command(Protocol):
    """One parsed command line, ready to run (each command module defines its own)."""

    def run(self, ctx: Context) -> None: ...
