"""Database connections outside the pool: the CLI's one-shot helpers and the
dedicated LISTEN connection. Same rules as ``gateway.db`` (whose error mapping they
use): ``%s`` parameters only, writes in ``cur.begin()``, driver errors mapped once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiopg

from gateway import queries as q
from gateway.db import NOTIFY_CHANNEL, mapped_errors

SCHEMA_PATH = Path(__file__).resolve().with_name("schema.sql")


@contextlib.asynccontextmanager
async def connect(database_url: str, timeout_seconds: float) -> AsyncIterator[aiopg.Connection]:
    """One connection outside any pool, closed on exit; connection errors are mapped."""
    with mapped_errors():
        conn = await aiopg.connect(
            database_url, timeout=timeout_seconds, enable_hstore=False, enable_uuid=False,
            enable_json=False,
        )  # fmt: skip
    try:
        yield conn
    finally:
        conn.close()


async def apply_schema(database_url: str, timeout_seconds: float = 30.0) -> None:
    sql = SCHEMA_PATH.read_text(encoding="utf-8")
    async with connect(database_url, timeout_seconds) as conn, conn.cursor() as cur:
        with mapped_errors():
            async with cur.begin():
                # Two replicas running init-db at once would race on CREATE ... IF NOT EXISTS.
                await cur.execute("SELECT pg_advisory_xact_lock(%s)", (q.SCHEMA_LOCK_KEY,))
                await cur.execute(sql)


async def ensure_org(database_url: str, name: str, timeout_seconds: float = 10.0) -> int:
    async with connect(database_url, timeout_seconds) as conn, conn.cursor() as cur:
        with mapped_errors():
            async with cur.begin():
                await cur.execute(q.INSERT_ORG, (name,))
                row = await cur.fetchone()
                if row is None:
                    await cur.execute(q.FIND_ORG, (name,))
                    row = await cur.fetchone()
                return int(row[0])


async def insert_admin_token(
    database_url: str,
    org_name: str,
    token_hash: bytes,
    role: str,
    label: str,
    timeout_seconds: float = 10.0,
) -> int | None:
    """The new token's id, or None when the organization does not exist."""
    async with connect(database_url, timeout_seconds) as conn, conn.cursor() as cur:
        with mapped_errors():
            await cur.execute(q.INSERT_ADMIN, (token_hash, role, label, org_name))
            row = await cur.fetchone()
            return None if row is None else int(row[0])


class Listener:
    """The LISTEN connection: outside the pool, on its own connection."""

    def __init__(self, conn: aiopg.Connection) -> None:
        self._conn = conn

    async def next_payload(self) -> str:
        """The next notification's payload; Unavailable when the connection is lost."""
        with mapped_errors():
            notify = await self._conn.notifies.get()
        return str(notify.payload)

    async def ping(self) -> None:
        with mapped_errors():
            async with self._conn.cursor() as cur:
                await cur.execute("SELECT 1")


@contextlib.asynccontextmanager
async def open_listener(database_url: str, timeout_seconds: float) -> AsyncIterator[Listener]:
    async with connect(database_url, timeout_seconds) as conn:
        with mapped_errors():
            async with conn.cursor() as cur:
                await cur.execute(f"LISTEN {NOTIFY_CHANNEL}")  # a constant identifier
        yield Listener(conn)
