"""The data module: the aiopg pool and every SQL statement of the gateway.

Everything aiopg/psycopg2 stays behind this module. Statements take ``%s``
parameters only; multi-statement writes run in ``async with cur.begin():``.
psycopg2 errors are mapped here, once: a lost or unreachable database (and the
pool's timeout, which bounds every query) becomes :class:`~gateway.errors.Unavailable`
with a ``retry_after_seconds``; constraint outcomes the services care about are
returned as values; anything else is logged and re-raised as ``DatabaseFault``
(no SQL or driver text reaches a caller).

Timestamps are always parameters: the gateway's clock is the one clock (SPEC 2.2, 4.5).
Connections outside the pool (the CLI's one-shot helpers, the LISTEN connection)
live in ``gateway.db_direct``.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiopg
import psycopg2
import psycopg2.errors
import psycopg2.extensions

from gateway import queries as q
from gateway.errors import Unavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1.0
NOTIFY_CHANNEL = "fleet_node_events"  # LISTENed to by gateway.db_direct

Row = tuple[Any, ...]
_UNREACHABLE = (psycopg2.OperationalError, psycopg2.InterfaceError, OSError, TimeoutError)


class ConfirmOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    NOT_FOUND = "not_found"
    REVOKED = "revoked"
    NOT_AWAITING = "not_awaiting"
    CODE_EXPIRED = "code_expired"


class DatabaseFault(RuntimeError):
    """An unexpected database error; the boundary answers ``internal`` without details."""


def unavailable() -> Unavailable:
    return Unavailable("database unavailable", retry_after_seconds=RETRY_AFTER_SECONDS)


@contextlib.contextmanager
def mapped_errors() -> Any:
    """Map driver errors raised in the block to domain errors (the one mapping)."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise unavailable() from exc
    except psycopg2.Error as exc:
        logger.error("database error: %s", type(exc).__name__)
        raise DatabaseFault("database error") from exc


async def open_pool(config_url: str, *, maxsize: int, timeout_seconds: float) -> aiopg.Pool:
    """A pool that opens no connection yet, so the gateway starts while the DB is down."""
    return await aiopg.create_pool(
        config_url,
        minsize=0,
        maxsize=maxsize,
        timeout=timeout_seconds,
        enable_hstore=False,
        enable_uuid=False,
        enable_json=False,
    )


class Database:
    """Every statement of the gateway, over one pool."""

    def __init__(self, pool: aiopg.Pool, on_pool_change: Callable[[int], None]) -> None:
        self._pool = pool
        self._on_pool_change = on_pool_change

    def in_use(self) -> int:
        return int(self._pool.size - self._pool.freesize)

    async def aclose(self) -> None:
        self._pool.close()
        await self._pool.wait_closed()

    @contextlib.asynccontextmanager
    async def _cursor(self) -> AsyncIterator[aiopg.Cursor]:
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

    async def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        async with self._cursor() as cur:
            await cur.execute(sql, params)
            row: Row | None = await cur.fetchone()
            return row

    async def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        async with self._cursor() as cur:
            await cur.execute(sql, params)
            rows: list[Row] = await cur.fetchall()
            return rows

    # --- health -------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._one("SELECT 1")

    # --- organizations and admin tokens ---------------------------------------------------

    async def find_admin_token(self, token_hash: bytes) -> Row | None:
        """(id, org_id, role, token_hash) of a live admin token."""
        return await self._one(q.FIND_ADMIN, (token_hash,))

    # --- enrollment ---------------------------------------------------------------------

    async def insert_enrollment_code(
        self,
        org_id: int,
        token_id: int,
        code_hash: bytes,
        now: datetime.datetime,
        expires_at: datetime.datetime,
    ) -> int:
        row = await self._one(
            q.INSERT_ENROLLMENT_CODE, (org_id, code_hash, token_id, now, expires_at)
        )
        assert row is not None
        return int(row[0])

    async def register_node(
        self,
        code_hash: bytes,
        now: datetime.datetime,
        name: str,
        pubkey: bytes,
        fingerprint: str,
    ) -> int | None:
        """Create the node and bind the code in one transaction; the node id, or None when
        the code is unknown, used or expired. A live node with this key or name raises
        ``NameOrKeyInUse`` and rolls back, so the code stays usable."""
        async with self._cursor() as cur:
            try:
                async with cur.begin():
                    # FOR UPDATE serialises concurrent Registers of one code; the loser
                    # re-reads status and finds the code bound.
                    await cur.execute(q.LOCK_OPEN_CODE, (code_hash, now))
                    code = await cur.fetchone()
                    if code is None:
                        return None
                    enrollment_id, org_id = code
                    await cur.execute(q.INSERT_NODE, (org_id, name, pubkey, fingerprint, now))
                    (node_id,) = await cur.fetchone()
                    await cur.execute(q.BIND_CODE, (node_id, enrollment_id))
                    return int(node_id)
            except psycopg2.errors.UniqueViolation as exc:
                raise NameOrKeyInUse() from exc

    async def confirm_node(
        self, org_id: int, node_id: int, now: datetime.datetime, key_hash: bytes
    ) -> ConfirmOutcome:
        """Confirm an awaiting node; only on CONFIRMED is the api key hash stored."""
        async with self._cursor() as cur, cur.begin():
            await cur.execute(q.LOCK_NODE_FOR_CONFIRM, (node_id, org_id))
            row = await cur.fetchone()
            if row is None:
                return ConfirmOutcome.NOT_FOUND
            status, code_expires_at = row
            if status == "REVOKED":
                return ConfirmOutcome.REVOKED
            if status == "EXPIRED":
                return ConfirmOutcome.CODE_EXPIRED
            if status != "AWAITING_CONFIRMATION":
                return ConfirmOutcome.NOT_AWAITING
            if code_expires_at is None or code_expires_at <= now:
                return ConfirmOutcome.CODE_EXPIRED
            await cur.execute(q.MARK_CONFIRMED, (now, node_id, org_id))
            await cur.execute(q.CONFIRM_ENROLLMENT, (node_id,))
            await cur.execute(q.INSERT_API_KEY, (org_id, node_id, key_hash, now))
            return ConfirmOutcome.CONFIRMED

    async def revoke_node(self, org_id: int, node_id: int, now: datetime.datetime) -> bool:
        """Revoke, soft-delete and end every credential of a listed node; NOTIFY on commit."""
        async with self._cursor() as cur, cur.begin():
            await cur.execute(q.MARK_REVOKED, (now, node_id, org_id))
            if await cur.fetchone() is None:
                return False
            await cur.execute(q.CANCEL_ENROLLMENT, (node_id,))
            await cur.execute(q.REVOKE_API_KEYS, (now, node_id))
            await cur.execute(q.DELETE_SESSIONS, (node_id,))
            await cur.execute(q.DELETE_CHALLENGES, (node_id,))
            await cur.execute(q.NOTIFY, (NOTIFY_CHANNEL, f"revoke:{node_id}"))
            return True

    async def list_nodes(
        self,
        org_id: int,
        before_id: int | None,
        limit: int,
        connectivity: int,
        online_since: datetime.datetime,
    ) -> list[Row]:
        """(id, name, status, fingerprint, created_at, last_seen_at, clock_skew_ms), newest
        first; ``connectivity`` 0 = all, 1 online, 2 offline, 3 never seen."""
        return await self._all(
            q.LIST_NODES,
            {
                "org_id": org_id,
                "before_id": before_id,
                "limit": limit,
                "connectivity": connectivity,
                "online_since": online_since,
            },
        )

    # --- handshake and sessions ------------------------------------------------------------

    async def find_api_key(self, key_hash: bytes) -> Row | None:
        """(node_id, org_id, identity_pubkey, key_hash) of a live key of a live node."""
        return await self._one(q.FIND_API_KEY, (key_hash,))

    async def put_challenge(
        self,
        node_id: int,
        org_id: int,
        challenge_hash: bytes,
        now: datetime.datetime,
        expires_at: datetime.datetime,
    ) -> bool:
        """Replace the node's live challenge; False when the node stopped being live."""
        row = await self._one(
            q.UPSERT_CHALLENGE, (node_id, org_id, challenge_hash, now, expires_at, node_id)
        )
        return row is not None

    async def take_challenge(self, challenge_hash: bytes) -> Row | None:
        """Consume a challenge (delete-returning): (node_id, org_id, expires_at, pubkey)."""
        async with self._cursor() as cur, cur.begin():
            await cur.execute(q.TAKE_CHALLENGE, (challenge_hash,))
            row: Row | None = await cur.fetchone()
            return row

    async def put_session(
        self,
        node_id: int,
        org_id: int,
        token_hash: bytes,
        now: datetime.datetime,
        expires_at: datetime.datetime,
    ) -> int | None:
        """Replace the node's session (NOTIFY so replicas drop the old one); the new
        session id, or None when the node or its api key is no longer live."""
        async with self._cursor() as cur, cur.begin():
            await cur.execute(
                q.UPSERT_SESSION, (node_id, org_id, token_hash, now, expires_at, node_id)
            )
            row = await cur.fetchone()
            if row is None:
                return None
            session_id = int(row[0])
            await cur.execute(q.NOTIFY, (NOTIFY_CHANNEL, f"session:{node_id}:{session_id}"))
            return session_id

    async def find_session(self, token_hash: bytes, now: datetime.datetime) -> Row | None:
        """(session_id, node_id, org_id, expires_at, token_hash) of a live session."""
        return await self._one(q.FIND_SESSION, (token_hash, now))

    # --- heartbeats ---------------------------------------------------------------------------

    async def write_last_seen(
        self,
        node_ids: Sequence[int],
        seen_ats: Sequence[datetime.datetime],
        skews_ms: Sequence[int],
        debounce_seconds: float,
    ) -> list[Row]:
        """One statement for a whole flush: (node_id, written, live, last_seen_at) per id."""
        return await self._all(
            q.WRITE_LAST_SEEN,
            {
                "ids": list(node_ids),
                "seen": list(seen_ats),
                "skews": list(skews_ms),
                "debounce": debounce_seconds,
            },
        )

    # --- sweeping -------------------------------------------------------------------------------

    async def sweep(self, now: datetime.datetime) -> Row:
        """(challenges, sessions, enrollments) removed or expired."""
        async with self._cursor() as cur, cur.begin():
            await cur.execute(q.SWEEP, {"now": now})
            row: Row = await cur.fetchone()
            return row


class NameOrKeyInUse(Exception):
    """Register hit the unique index of a live node's key or name."""
