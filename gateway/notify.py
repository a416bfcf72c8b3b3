"""The push channel: LISTEN on a dedicated connection outside the pool (SPEC 3.4, 3.5).

The database NOTIFYs ``revoke:<node id>`` when a node is revoked and
``session:<node id>:<session id>`` when its session rotates; every replica drops that
node's cached sessions (all of them, or all but the new one). The
connection is re-opened (and LISTEN re-issued) whenever it is lost, e.g. when the
database restarts. While it is down a notification could be missed, so the session
cache is disabled until it is back (then it starts empty).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateway import db, db_direct
from gateway.errors import Unavailable

logger = logging.getLogger(__name__)


class NotifyListener:
    def __init__(
        self,
        database_url: str,
        *,
        on_connected: Callable[[], None],
        on_lost: Callable[[], None],
        on_node_event: Callable[[str, int, int | None], None],
        timeout_seconds: float,
        keepalive_seconds: float = 5.0,
        reconnect_delay_seconds: float = 0.5,
    ) -> None:
        self._database_url = database_url
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_node_event = on_node_event
        self._timeout_seconds = timeout_seconds
        self._keepalive_seconds = keepalive_seconds
        self._reconnect_delay_seconds = reconnect_delay_seconds
        self.connected = asyncio.Event()
        self._connects = 0
        self._connects_changed = asyncio.Condition()

    async def listen_forever(self) -> None:
        delay = self._reconnect_delay_seconds
        while True:
            try:
                async with db_direct.open_listener(
                    self._database_url, self._timeout_seconds
                ) as conn:
                    self._on_connected()
                    self.connected.set()
                    await self._count_connect()
                    delay = self._reconnect_delay_seconds
                    logger.info("listening for node events")
                    await self._dispatch_forever(conn)
            except Unavailable:
                if self.connected.is_set():
                    logger.warning("lost the LISTEN connection; reconnecting")
            finally:
                if self.connected.is_set():
                    self.connected.clear()
                self._on_lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    @property
    def connects(self) -> int:
        """How many times the LISTEN connection was (re)established."""
        return self._connects

    async def wait_connects(self, count: int) -> None:
        """Wait until the connection has been established ``count`` times in all."""
        async with self._connects_changed:
            await self._connects_changed.wait_for(lambda: self._connects >= count)

    async def _count_connect(self) -> None:
        async with self._connects_changed:
            self._connects += 1
            self._connects_changed.notify_all()

    async def _dispatch_forever(self, conn: db_direct.Listener) -> None:
        while True:
            try:
                async with asyncio.timeout(self._keepalive_seconds):
                    payload = await conn.next_payload()
            except TimeoutError:
                # Quiet channel: prove the connection is alive (a dead peer may not
                # close the socket).
                try:
                    async with asyncio.timeout(self._timeout_seconds):
                        await conn.ping()
                except TimeoutError:
                    raise db.unavailable() from None
                continue
            self._dispatch(payload)

    def _dispatch(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        node, _, session = rest.partition(":")
        if not node.isdigit() or not (session == "" or session.isdigit()):
            logger.warning("ignoring malformed notification")
            return
        self._on_node_event(kind, int(node), int(session) if session else None)
