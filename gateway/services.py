"""The composition root: every resource and background task of one gateway process.

``open_services`` builds on an ``AsyncExitStack``: the pool first, then each background
task's owner (the last_seen writer, the LISTEN listener, the sweeper), each an ``open_*``
context manager that starts its task and stops it on the way out; a failure half-way
unwinds what was opened, so nothing leaks. It never needs the database to start: while the
database is down, calls raise ``Unavailable``, ``Readiness.check`` is False, and
everything recovers when it returns (the pool opens new connections, the listener
reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import attrs

from gateway.admin import Admin
from gateway.auth import Auth
from gateway.clock import Clock, utc_now
from gateway.codes import EnrollmentCodes
from gateway.config import Config
from gateway.enrollment import Enrollment
from gateway.errors import DatabaseFault, Unavailable
from gateway.event_retention import open_event_retention
from gateway.events import FleetEvents
from gateway.fleet_gauges import open_fleet_gauges
from gateway.heap import open_heap_watch
from gateway.heartbeat import Heartbeats
from gateway.listener import NotifyListener, open_listener
from gateway.metrics import Metrics
from gateway.offline_scan import open_offline_scanner
from gateway.session_cache import SessionCache
from gateway.store.notifications import Invalidation, InvalidationKind
from gateway.store.pool import Database
from gateway.store.store import open_store
from gateway.sweeper import open_sweeper
from gateway.tasks import TaskWatch
from gateway.writer import LastSeenWriter, open_writer

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 1.0


class Readiness:
    """``/readyz``: PostgreSQL answers a trivial query within 1 s and every background
    task is alive."""

    def __init__(self, database: Database, watch: TaskWatch, metrics: Metrics) -> None:
        self._database = database
        self._watch = watch
        self._metrics = metrics

    async def check(self) -> bool:
        ready = self._watch.all_alive() and await self._database_answers()
        self._metrics.ready.set(1 if ready else 0)
        return ready

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await self._database.ping()
        except (TimeoutError, Unavailable, DatabaseFault):
            return False
        return True


@attrs.frozen
class Services:
    """What the HTTP layer calls."""

    enrollment: Enrollment
    codes: EnrollmentCodes
    auth: Auth
    heartbeats: Heartbeats
    admin: Admin
    readiness: Readiness
    events: FleetEvents
    # The background parts, for what a test or an operator may need to wait on or read.
    listener: NotifyListener
    writer: LastSeenWriter


class _PushChannel:
    """What the listener's news means for this process's caches."""

    def __init__(self, cache: SessionCache, writer: LastSeenWriter, metrics: Metrics) -> None:
        self._cache = cache
        self._writer = writer
        # Read at each scrape: 1 exactly while the cache may answer (proved alive < 1 s ago).
        metrics.listener_up.set_function(lambda: 1.0 if cache.enabled else 0.0)

    def connected(self) -> None:
        self._cache.enable()

    def proved(self, sent_at: float) -> None:
        self._cache.proved(sent_at)

    def lost(self) -> None:
        self._cache.disable()

    def invalidate(self, invalidation: Invalidation) -> None:
        node_id = invalidation.fleet_node_id
        self._cache.drop_node(node_id, keep_session_id=invalidation.session_id)
        if invalidation.kind is InvalidationKind.REVOKE:
            self._writer.forget(node_id)

    def revoked(self, node_id: int) -> None:
        """This replica forgets a node it revoked at once (the others through NOTIFY)."""
        self.invalidate(Invalidation(InvalidationKind.REVOKE, node_id))

    def rekeyed(self, node_id: int) -> None:
        """A retried Register replaced the node's api key: this replica drops its sessions
        at once (the others through NOTIFY)."""
        self.invalidate(Invalidation(InvalidationKind.SESSION, node_id))


@contextlib.asynccontextmanager
async def open_services(
    config: Config, metrics: Metrics, *, clock: Clock = utc_now
) -> AsyncIterator[Services]:
    """Open the pool, watch the garbage collector (``gateway.heap``), start the writer,
    listener, sweeper, offline scan, fleet gauges and event retention; on the way out stop
    them in reverse order: pending heartbeat writes are flushed (and answered) before the
    pool closes. Every await of the way out is bounded."""
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_store(
                config.database_url,
                pool_size=config.db_pool_size,
                timeout_seconds=config.db_timeout_seconds,
                on_pool_change=metrics.db_pool_in_use.set,
            )
        )
        watch = TaskWatch(metrics.background_task_failures)
        cache = SessionCache(config.session_cache_size, clock)
        stack.enter_context(open_heap_watch(metrics.gc_pause, freeze=config.gc_freeze))
        writer = await stack.enter_async_context(
            open_writer(store.last_seen, config, metrics, watch)
        )
        push = _PushChannel(cache, writer, metrics)
        listener = await stack.enter_async_context(
            open_listener(
                config.database_url,
                on_connected=push.connected,
                on_lost=push.lost,
                on_invalidation=push.invalidate,
                on_proved=push.proved,
                timeout_seconds=config.db_timeout_seconds,
                watch=watch,
            )
        )
        await stack.enter_async_context(
            open_sweeper(store.housekeeping, clock, config.sweep_interval_seconds, watch)
        )
        await stack.enter_async_context(
            open_offline_scanner(
                store.liveness,
                clock,
                config.offline_after_seconds,
                config.offline_scan_interval_seconds,
                watch,
            )
        )
        await stack.enter_async_context(
            open_fleet_gauges(
                store.liveness, metrics.fleet_nodes, config.gauge_refresh_interval_seconds, watch
            )
        )
        await stack.enter_async_context(
            open_event_retention(
                store.events,
                clock,
                config.event_retention_seconds,
                config.sweep_interval_seconds,
                watch,
            )
        )
        yield Services(
            enrollment=Enrollment(store.registration, metrics, clock, on_rekeyed=push.rekeyed),
            codes=EnrollmentCodes(store.codes, clock),
            auth=Auth(store.credentials, config, metrics, cache, clock),
            heartbeats=Heartbeats(writer, config, metrics, clock),
            admin=Admin(store.nodes, store.enrollment, config, clock, on_revoked=push.revoked),
            readiness=Readiness(store.database, watch, metrics),
            events=FleetEvents(store.events, store.summary, config, clock),
            listener=listener,
            writer=writer,
        )
