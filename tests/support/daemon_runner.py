"""``fleetnode run`` in the background of a Trio test on the virtual clock, with a record of
every health.json the daemon saved (the in-place ``in_thread`` seam sees each save)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from agent.health import HEALTH_FILE, Health, decode_health
from tests.support.commands import Cli, Outcome


@attrs.define
class HealthSaves:
    """Runs the daemon's blocking work in place and records each new health.json."""

    directory: Path
    saved: list[tuple[float, Health]] = attrs.Factory(list)
    _last: bytes | None = None

    async def in_thread(self, work: Callable[[], None]) -> None:
        work()
        try:
            raw = (self.directory / HEALTH_FILE).read_bytes()
        except FileNotFoundError:
            return
        if raw != self._last:  # a state save leaves health.json as it was
            self._last = raw
            self.saved.append((trio.current_time(), decode_health(raw)))

    @property
    def last(self) -> Health:
        return self.saved[-1][1]


@attrs.define
class Daemon:
    """One ``fleetnode run``; ``outcome`` and ``returned_at`` once it has returned."""

    outcome: Outcome | None = None
    returned_at: float | None = None

    async def run(self, cli: Cli, *argv: str, **options: Any) -> None:
        self.outcome = await cli("run", *argv, **options)
        self.returned_at = trio.current_time()


def start_daemon(
    nursery: trio.Nursery, cli: Cli, saves: HealthSaves, *argv: str, **options: Any
) -> Daemon:
    daemon = Daemon()
    nursery.start_soon(
        functools.partial(daemon.run, cli, *argv, in_thread=saves.in_thread, **options)
    )
    return daemon
