"""The push channel: LISTEN on a dedicated connection outside the pool (SPEC 3.4, 3.5, 4.4).

The database NOTIFYs when a node is revoked and when its session rotates
(``gateway.store.notifications``); every replica then drops that node's cached sessions.
The connection is re-opened (and LISTEN re-issued) whenever it is lost, e.g. when the
database restarts. While it is down a notification could be missed, so the owner is told
(``on_lost``: the session cache switches off) and told again when it is back
(``on_connected``: the cache starts empty).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import NoReturn

from gateway.errors import Unavailable
from gateway.store.listen import ListenConnection, open_listen_connection
from gateway.store.notifications import Invalidation
from gateway.store.pool import unavailable
from gateway.tasks import TaskWatch, watched_task

logger = logging.getLogger(__name__)

RECONNECT_DELAY_SECONDS = 0.5
MAX_RECONNECT_DELAY_SECONDS = 5.0


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


class NotifyListener:
    def __init__(
        self,
        database_url: str,
        *,
        on_connected: Callable[[], None],
        on_lost: Callable[[], None],
        on_invalidation: Callable[[Invalidation], None],
        timeout_seconds: float,
        keepalive_seconds: float = 5.0,
    ) -> None:
        self._database_url = database_url
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_invalidation = on_invalidation
        self._timeout_seconds = timeout_seconds
        self._keepalive_seconds = keepalive_seconds
        self.connects = _Tally()  # LISTEN connections established
        self.invalidations = _Tally()  # notifications applied

    async def listen_forever(self) -> NoReturn:
        delay = RECONNECT_DELAY_SECONDS
        while True:
            connected = False
            try:
                async with open_listen_connection(
                    self._database_url, self._timeout_seconds
                ) as conn:
                    connected = True
                    self._on_connected()
                    await self.connects.increment()
                    delay = RECONNECT_DELAY_SECONDS
                    logger.info("listening for node events")
                    await self._dispatch_forever(conn)
            except Unavailable:
                if connected:
                    logger.warning("lost the LISTEN connection; reconnecting")
            finally:
                self._on_lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)

    async def _dispatch_forever(self, conn: ListenConnection) -> NoReturn:
        while True:
            try:
                async with asyncio.timeout(self._keepalive_seconds):
                    invalidation = await conn.next_invalidation()
            except TimeoutError:
                # Quiet channel: prove the connection is alive (a dead peer may not
                # close the socket).
                try:
                    async with asyncio.timeout(self._timeout_seconds):
                        await conn.ping()
                except TimeoutError:
                    raise unavailable() from None
                continue
            if invalidation is None:
                logger.warning("ignoring malformed notification")
                continue
            self._on_invalidation(invalidation)
            await self.invalidations.increment()


@contextlib.asynccontextmanager
async def open_listener(
    database_url: str,
    *,
    on_connected: Callable[[], None],
    on_lost: Callable[[], None],
    on_invalidation: Callable[[Invalidation], None],
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
        timeout_seconds=timeout_seconds,
    )
    async with watched_task("listener", listener.listen_forever, watch, on_death=on_lost):
        yield listener
