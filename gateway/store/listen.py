"""The LISTEN connection: outside the pool, on its own connection (SPEC 3.4, 3.5, 4.4).

Besides the node events it listens on a channel of its own, on which :meth:`probe` sends
a numbered notification through the database and back. PostgreSQL delivers
notifications in commit order, so when probe ``n`` comes back every node event committed
before probe ``n`` was sent has been delivered ahead of it: that is how the listener
proves it is alive and caught up (a stopped backend or a half-open connection delivers
nothing and answers nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import aiopg
import attrs
from psycopg2 import sql

from gateway.store.notifications import CHANNEL, Invalidation
from gateway.store.pool import connect, mapped_errors

# libpq's own backstop for a peer that vanished without closing the connection (TCP only;
# a Unix socket ignores them): keepalives notice an idle dead peer, tcp_user_timeout
# (milliseconds) a peer that stopped acknowledging what we sent. The probes notice first.
KEEPALIVE_SETTINGS = {
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


def _honour_swallowed_cancellation() -> None:
    """aiopg waits for the server with ``asyncio.wait_for``, which on Python 3.11 can
    swallow a cancellation that arrives as the answer does (PITFALLS): the task then
    runs on although its owner stopped it. Raise it again here."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@attrs.frozen
class Probe:
    """One of our probes, back from the database."""

    number: int


class ListenConnection:
    def __init__(self, conn: aiopg.Connection, probe_channel: str) -> None:
        self._conn = conn
        self._probe_channel = probe_channel

    async def next_notice(self) -> Invalidation | Probe | None:
        """The next notification: a node event, one of our probes, or None when its
        payload is malformed; Unavailable when the connection is lost."""
        with mapped_errors():
            notification = await self._conn.notifies.get()
        payload = str(notification.payload)
        if notification.channel == self._probe_channel:
            return Probe(int(payload)) if payload.isdigit() else None
        return Invalidation.parse(payload)

    async def probe(self, number: int) -> None:
        """Send probe ``number`` (it comes back through :meth:`next_notice`). Re-issuing
        the LISTEN costs nothing and keeps ``pg_stat_activity`` showing what this
        connection is for."""
        with mapped_errors():
            async with self._conn.cursor() as cur:
                await cur.execute(
                    f"LISTEN {CHANNEL}; SELECT pg_notify(%s, %s)",  # a constant identifier
                    (self._probe_channel, str(number)),
                )
        _honour_swallowed_cancellation()

    async def subscribe(self) -> None:
        """LISTEN for node events and for this connection's own probes."""
        with mapped_errors():
            async with self._conn.cursor() as cur:
                await cur.execute(f"LISTEN {CHANNEL}")  # a constant identifier
                await cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._probe_channel)))
        _honour_swallowed_cancellation()


@contextlib.asynccontextmanager
async def open_listen_connection(
    database_url: str, timeout_seconds: float, application_name: str
) -> AsyncIterator[ListenConnection]:
    """A connection listening for node events and for its own probes; ``application_name``
    tells it apart in ``pg_stat_activity``."""
    settings = {"application_name": application_name, **KEEPALIVE_SETTINGS}
    async with connect(database_url, timeout_seconds, settings) as conn:
        listen = ListenConnection(conn, f"fleet_liveness_{secrets.token_hex(8)}")
        await listen.subscribe()
        yield listen
