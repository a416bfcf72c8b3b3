"""The LISTEN connection: outside the pool, on its own connection (SPEC 3.4, 3.5, 4.4)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiopg

from gateway.store.notifications import CHANNEL, Invalidation
from gateway.store.pool import connect, mapped_errors


class ListenConnection:
    def __init__(self, conn: aiopg.Connection) -> None:
        self._conn = conn

    async def next_invalidation(self) -> Invalidation | None:
        """The next notification (None when its payload is malformed); Unavailable when
        the connection is lost."""
        with mapped_errors():
            notification = await self._conn.notifies.get()
        return Invalidation.parse(str(notification.payload))

    async def ping(self) -> None:
        """A round trip on this very connection: proves it (and its LISTEN) alive."""
        with mapped_errors():
            async with self._conn.cursor() as cur:
                await cur.execute("SELECT 1")


@contextlib.asynccontextmanager
async def open_listen_connection(
    database_url: str, timeout_seconds: float
) -> AsyncIterator[ListenConnection]:
    async with connect(database_url, timeout_seconds) as conn:
        with mapped_errors():
            async with conn.cursor() as cur:
                await cur.execute(f"LISTEN {CHANNEL}")  # a constant identifier
        yield ListenConnection(conn)
