"""The push channel: LISTEN on a dedicated connection outside the pool (SPEC 3.4, 3.5, 4.4).

The database NOTIFYs when a node is revoked and when its session rotates
(``gateway.store.notifications``); every replica then drops that node's cached sessions.
The connection is re-opened (and LISTEN re-issued) whenever it is lost, e.g. when the
database restarts. While it is down a notification could be missed, so the owner is told
(``on_lost``: the session cache switches off) and told again when it is back
(``on_connected``: the cache starts empty).

A connection can also die silently: a stopped backend or a half-open TCP connection
delivers nothing and reports no error, so "no notification" proves nothing. Every
``PROBE_INTERVAL_SECONDS`` the listener therefore sends a probe through the database and
back on the same connection (``ListenConnection.probe``); when one comes back, every
notification committed before it was sent has been applied, and ``on_proved`` gets the
(monotonic) time it was sent. The cache answers only within a second of that time, so a
silent connection stops it within a second. A probe the database has not taken within
``PROBE_TIMEOUT_SECONDS`` means the connection is dead: it is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import NoReturn

from gateway.errors import Unavailable
from gateway.store.listen import ListenConnection, Probe, open_listen_connection
from gateway.store.notifications import Invalidation
from gateway.store.pool import unavailable
from gateway.tasks import TaskWatch, watched_task

logger = logging.getLogger(__name__)

RECONNECT_DELAY_SECONDS = 0.5
MAX_RECONNECT_DELAY_SECONDS = 5.0
PROBE_INTERVAL_SECONDS = 0.3
PROBE_TIMEOUT_SECONDS = 1.0

_instances = itertools.count(1)


class _Tally:
    """A count that can be waited on (``wait_for(n)`` returns once it reached ``n``)."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = asyncio.Condition()

    async def increment(self) -> None:
        async with self._changed:
            self.value += 1
            self._changed.notify_all()

    async def wait_for(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.value >= count)


class _Probes:
    """The probes one connection has sent and not yet seen back: number -> time sent."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._numbers = itertools.count(1)
        self._sent: dict[int, float] = {}

    def send(self) -> int:
        number = next(self._numbers)
        self._sent[number] = self._clock()
        return number

    def came_back(self, number: int) -> float | None:
        """When probe ``number`` was sent (None: not ours); older ones are forgotten."""
        sent_at = self._sent.pop(number, None)
        for older in [n for n in self._sent if n < number]:
            del self._sent[older]
        return sent_at


class NotifyListener:
    def __init__(
        self,
        database_url: str,
        *,
        on_connected: Callable[[], None],
        on_lost: Callable[[], None],
        on_invalidation: Callable[[Invalidation], None],
        on_proved: Callable[[float], None],
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database_url = database_url
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_invalidation = on_invalidation
        self._on_proved = on_proved
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        # Tells this listener's connection apart in pg_stat_activity.
        self.application_name = f"fleet-gateway listener {os.getpid()}.{next(_instances)}"
        self.connects = _Tally()  # LISTEN connections established
        self.invalidations = _Tally()  # notifications applied
        self.proofs = _Tally()  # probes that came back
        self.losses = _Tally()  # connections given up
        self.proved_at = -math.inf  # when the last probe that came back was sent

    async def listen_forever(self) -> NoReturn:
        delay = RECONNECT_DELAY_SECONDS
        while True:
            connected = False
            started = self._clock()
            try:
                async with open_listen_connection(
                    self._database_url, self._timeout_seconds, self.application_name
                ) as conn:
                    connected = True
                    self._on_connected()
                    # LISTEN is in place and the cache starts empty: a first proof.
                    self._proved(started)
                    await self.connects.increment()
                    delay = RECONNECT_DELAY_SECONDS
                    logger.info("listening for node events as %r", self.application_name)
                    await self._serve(conn)
            except* Unavailable:
                if connected:
                    logger.warning("lost the LISTEN connection; reconnecting")
                    await self.losses.increment()
            finally:
                self._on_lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)

    def _proved(self, sent_at: float) -> None:
        self.proved_at = sent_at
        self._on_proved(sent_at)

    async def _serve(self, conn: ListenConnection) -> None:
        """Apply notifications and send probes until the connection fails (Unavailable)."""
        probes = _Probes(self._clock)
        # The dispatcher never waits with a timeout: cancelling aiopg's notifies.get()
        # can drop a notification it already took off the queue. It runs in the group's
        # body: Python 3.11's TaskGroup leaves its parent marked as cancelling when a
        # child fails after the body has finished.
        async with asyncio.TaskGroup() as group:
            group.create_task(self._probe_forever(conn, probes))
            await self._dispatch_forever(conn, probes)

    async def _probe_forever(self, conn: ListenConnection, probes: _Probes) -> NoReturn:
        while True:
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                    await conn.probe(probes.send())
            except TimeoutError:
                raise unavailable() from None
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)

    async def _dispatch_forever(self, conn: ListenConnection, probes: _Probes) -> NoReturn:
        while True:
            notice = await conn.next_notice()
            if isinstance(notice, Probe):
                sent_at = probes.came_back(notice.number)
                if sent_at is not None:
                    self._proved(sent_at)
                    await self.proofs.increment()
            elif notice is None:
                logger.warning("ignoring malformed notification")
            else:
                self._on_invalidation(notice)
                await self.invalidations.increment()


@contextlib.asynccontextmanager
async def open_listener(
    database_url: str,
    *,
    on_connected: Callable[[], None],
    on_lost: Callable[[], None],
    on_invalidation: Callable[[Invalidation], None],
    on_proved: Callable[[float], None],
    timeout_seconds: float,
    watch: TaskWatch,
) -> AsyncIterator[NotifyListener]:
    """The listener and its task. If the task dies, ``on_lost`` runs for good: without a
    push channel nothing may be answered from a cache."""
    listener = NotifyListener(
        database_url,
        on_connected=on_connected,
        on_lost=on_lost,
        on_invalidation=on_invalidation,
        on_proved=on_proved,
        timeout_seconds=timeout_seconds,
    )
    async with watched_task("listener", listener.listen_forever, watch, on_death=on_lost):
        yield listener
