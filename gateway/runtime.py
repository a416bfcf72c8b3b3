"""The gateway's data and domain layer, assembled: what the HTTP layer calls.

``open_runtime`` owns every resource and background task of one gateway process:
the aiopg pool, the LISTEN connection task, the last_seen writer task and the
sweeper task. It never needs the database to start: while the database is down,
calls raise ``Unavailable``, ``check_ready`` is False, and everything recovers when
it returns (the pool opens new connections, the listener reconnects).

The one-shot helpers at the bottom serve the CLI (init-db, create-org,
create-admin-token); each opens and closes its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import attrs

from gateway import db, db_direct
from gateway import secrets as s
from gateway.admin import Admin
from gateway.auth import Auth
from gateway.clock import Clock, utc_now
from gateway.config import Config
from gateway.enrollment import Enrollment
from gateway.errors import NotFound, Unavailable
from gateway.heartbeat import Heartbeats
from gateway.metrics import Metrics
from gateway.notify import NotifyListener
from gateway.principals import Role
from gateway.session_cache import SessionCache
from gateway.sweeper import sweep_forever
from gateway.writer import LastSeenWriter

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 1.0
SHUTDOWN_STEP_SECONDS = 5.0


@attrs.frozen
class Runtime:
    enrollment: Enrollment
    auth: Auth
    heartbeats: Heartbeats
    admin: Admin
    database: db.Database
    listener: NotifyListener
    sessions: SessionCache
    writer: LastSeenWriter

    async def check_ready(self) -> bool:
        """True when PostgreSQL answers a trivial query within 1 s (``/readyz``)."""
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await self.database.ping()
        except (TimeoutError, Unavailable, db.DatabaseFault):
            return False
        return True


async def _stop(task: asyncio.Task[None], name: str) -> None:
    task.cancel()
    try:
        async with asyncio.timeout(SHUTDOWN_STEP_SECONDS):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    except TimeoutError:
        logger.warning("%s did not stop in %ss", name, SHUTDOWN_STEP_SECONDS)
    except Exception:
        logger.exception("%s failed", name)


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config, metrics: Metrics, *, clock: Clock = utc_now
) -> AsyncIterator[Runtime]:
    """Open the pool and start the listener, writer and sweeper; on exit flush pending
    writes (answering waiting heartbeats) and close everything, every await bounded."""
    pool = await db.open_pool(
        config.database_url, maxsize=config.db_pool_size, timeout_seconds=config.db_timeout_seconds
    )
    database = db.Database(pool, metrics.db_pool_in_use.set)
    cache = SessionCache(config.session_cache_size, clock)
    writer = LastSeenWriter(database, config, metrics)

    def on_node_event(kind: str, node_id: int, session_id: int | None) -> None:
        cache.drop_node(node_id, keep_session_id=session_id)
        if kind == "revoke":
            writer.forget(node_id)

    listener = NotifyListener(
        config.database_url,
        on_connected=cache.enable,
        on_lost=cache.disable,
        on_node_event=on_node_event,
        timeout_seconds=config.db_timeout_seconds,
    )
    enrollment = Enrollment(database, metrics, clock)
    runtime = Runtime(
        enrollment=enrollment,
        auth=Auth(database, config, metrics, cache, clock),
        heartbeats=Heartbeats(writer, config, metrics, clock),
        admin=Admin(
            database,
            enrollment,
            config,
            metrics,
            clock,
            on_revoked=lambda node_id: on_node_event("revoke", node_id, None),
        ),
        database=database,
        listener=listener,
        sessions=cache,
        writer=writer,
    )
    listener_task = asyncio.create_task(listener.listen_forever(), name="fleet-listener")
    writer_task = asyncio.create_task(writer.run(), name="fleet-last-seen-writer")
    sweeper_task = asyncio.create_task(
        sweep_forever(database, clock, config.sweep_interval_seconds), name="fleet-sweeper"
    )
    try:
        yield runtime
    finally:
        await writer.aclose(writer_task, SHUTDOWN_STEP_SECONDS)
        await _stop(sweeper_task, "sweeper")
        await _stop(listener_task, "listener")
        pool.close()
        try:
            async with asyncio.timeout(SHUTDOWN_STEP_SECONDS):
                await pool.wait_closed()
        except TimeoutError:
            logger.warning("database pool did not close in %ss", SHUTDOWN_STEP_SECONDS)
            pool.terminate()


# --- one-shot helpers for the CLI -------------------------------------------------------


async def init_db(database_url: str) -> None:
    """Apply schema.sql; idempotent, safe on every deploy."""
    await db_direct.apply_schema(database_url)


async def create_org(database_url: str, name: str) -> int:
    """The organization's id, creating it if needed (idempotent on name)."""
    return await db_direct.ensure_org(database_url, name)


async def create_admin_token(database_url: str, org_name: str, role: Role, label: str) -> str:
    """A new admin token (shown once, stored hashed); NotFound when the org does not exist."""
    token = s.new_admin_token()
    token_id = await db_direct.insert_admin_token(
        database_url, org_name, s.digest(token), role.value, label
    )
    if token_id is None:
        raise NotFound(f"organization {org_name!r} not found")
    return token
