"""The aiopg pool, the cursor helper every store uses, and the one mapping of driver errors.

psycopg2 errors are mapped here, once: a lost or unreachable database (and the pool's
timeout, which bounds every query) becomes :class:`~gateway.errors.Unavailable` with a
``retry_after_seconds``; anything else is logged and re-raised as
:class:`~gateway.errors.DatabaseFault` (no SQL or driver text reaches a caller).
Constraint outcomes the services care about are mapped by the store that expects them.

Statements take ``%s`` parameters only; multi-statement writes run in
``async with cur.begin():``. Timestamps are always parameters: the gateway's clock is the
one clock (SPEC 2.2, 4.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import aiopg
import psycopg2
import psycopg2.extensions

from gateway.errors import DatabaseFault, Unavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1.0
CLOSE_TIMEOUT_SECONDS = 5.0

Row = tuple[Any, ...]
Params = Sequence[Any] | dict[str, Any]
_UNREACHABLE = (psycopg2.OperationalError, psycopg2.InterfaceError, OSError, TimeoutError)


def unavailable() -> Unavailable:
    return Unavailable("database unavailable", retry_after_seconds=RETRY_AFTER_SECONDS)


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Map driver errors raised in the block to domain errors (the one mapping)."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise unavailable() from exc
    except psycopg2.Error as exc:
        logger.error("database error: %s", type(exc).__name__)
        raise DatabaseFault("database error") from exc


class Database:
    """One pool; every store runs its statements through :meth:`cursor`."""

    def __init__(self, pool: aiopg.Pool, on_pool_change: Callable[[int], None]) -> None:
        self._pool = pool
        self._on_pool_change = on_pool_change

    def in_use(self) -> int:
        return int(self._pool.size - self._pool.freesize)

    @contextlib.asynccontextmanager
    async def cursor(self) -> AsyncIterator[aiopg.Cursor]:
        """A cursor on a pooled connection; driver errors inside are mapped."""
        with mapped_errors():
            conn = await self._pool.acquire()
        self._on_pool_change(self.in_use())
        reusable = False
        try:
            with mapped_errors():
                async with conn.cursor() as cur:
                    yield cur
            reusable = True
        except Unavailable:
            # The server went away (e.g. restarted): the pool's idle connections are
            # as dead as this one; drop them so the next call opens a fresh one.
            await self._pool.clear()
            raise
        except DatabaseFault:
            raise
        except Exception:
            # A domain outcome raised from inside the block: the transaction was rolled
            # back, so the connection is fine unless it is somehow still in one.
            idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
            reusable = conn.raw.get_transaction_status() == idle
            raise
        finally:
            # A connection that failed or was cancelled mid-way is closed, never handed
            # to the next caller (it may be dead or inside a transaction).
            if not reusable and not conn.closed:
                conn.close()
            self._pool.release(conn)
            self._on_pool_change(self.in_use())

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        async with self.cursor() as cur:
            await cur.execute(sql, params)
            row: Row | None = await cur.fetchone()
            return row

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.cursor() as cur:
            await cur.execute(sql, params)
            rows: list[Row] = await cur.fetchall()
            return rows

    async def ping(self) -> None:
        """A trivial round trip (readiness)."""
        await self.one("SELECT 1")


@contextlib.asynccontextmanager
async def open_database(
    database_url: str,
    *,
    maxsize: int,
    timeout_seconds: float,
    on_pool_change: Callable[[int], None],
) -> AsyncIterator[Database]:
    """A pool that opens no connection yet (so the gateway starts while the database is
    down), closed on the way out within :data:`CLOSE_TIMEOUT_SECONDS`."""
    pool = await aiopg.create_pool(
        database_url,
        minsize=0,
        maxsize=maxsize,
        timeout=timeout_seconds,
        enable_hstore=False,
        enable_uuid=False,
        enable_json=False,
    )
    try:
        yield Database(pool, on_pool_change)
    finally:
        pool.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await pool.wait_closed()
        except TimeoutError:
            logger.warning("database pool did not close in %ss", CLOSE_TIMEOUT_SECONDS)
            pool.terminate()


@contextlib.asynccontextmanager
async def connect(
    database_url: str, timeout_seconds: float, settings: Mapping[str, str] | None = None
) -> AsyncIterator[aiopg.Connection]:
    """One connection outside any pool (one-shot commands, LISTEN), closed on exit;
    ``settings`` are libpq connection parameters that override the URL's."""
    libpq: dict[str, Any] = dict(settings or {})
    with mapped_errors():
        conn = await aiopg.connect(
            database_url, timeout=timeout_seconds, enable_hstore=False, enable_uuid=False,
            enable_json=False, **libpq,
        )  # fmt: skip
    try:
        yield conn
    finally:
        conn.close()
