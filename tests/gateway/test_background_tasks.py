"""Every background task is owned and watched: a task that dies is logged once, counted,
and makes /readyz fail; its owner fails safe; nothing is left behind on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from gateway.config import Config
from gateway.errors import Unavailable
from gateway.listener import open_listener
from gateway.metrics import new_metrics
from gateway.services import Readiness, open_services
from gateway.store.notifications import Invalidation
from gateway.store.records import LastSeenResult, LastSeenWrite, SweepCounts
from gateway.sweeper import open_sweeper
from gateway.tasks import TaskWatch
from gateway.writer import DRAIN_TIMEOUT_SECONDS, WRITER_DOWN, open_writer
from tests.support.gateway_services import open_test_store
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio

DEADLINE_SECONDS = 10.0


def failures(metrics: Any, task: str) -> float:
    value = metrics.background_task_failures.labels(task=task)._value.get()
    return float(value)


async def wait_dead(watch: TaskWatch, name: str) -> None:
    """Wait (bounded) until ``name`` is recorded dead; the task dies on its own schedule."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while name not in watch.dead:  # noqa: ASYNC110 - the watch has no event to wait on
            await asyncio.sleep(0.01)


class BrokenLastSeenStore:
    """A store whose write meets a bug (not a database outage)."""

    async def write(
        self, writes: Sequence[LastSeenWrite], debounce_seconds: float, offline_after_seconds: float
    ) -> list[LastSeenResult]:
        raise RuntimeError("a bug in the writer's path")


async def test_a_dying_writer_answers_its_waiters_and_refuses_new_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The writer's death is logged once with its traceback and counted; the heartbeat
    that was waiting gets unavailable (not a hang), and so does every later one."""
    metrics = new_metrics()
    watch = TaskWatch(metrics.background_task_failures)
    now = datetime.datetime.now(datetime.UTC)
    with caplog.at_level(logging.ERROR, logger="gateway.tasks"):
        async with open_writer(BrokenLastSeenStore(), Config(), metrics, watch) as writer:  # type: ignore[arg-type]
            with pytest.raises(Unavailable):
                async with asyncio.timeout(DEADLINE_SECONDS):
                    await writer.submit(1, now, 0)
            await wait_dead(watch, "last_seen_writer")
            with pytest.raises(Unavailable, match=f"^{WRITER_DOWN}$"):
                await writer.submit(2, now, 0)
    deaths = [r for r in caplog.records if "last_seen_writer" in r.getMessage()]
    assert len(deaths) == 1 and deaths[0].exc_info is not None
    assert failures(metrics, "last_seen_writer") == 1
    assert watch.dead == {"last_seen_writer"}


async def test_a_bug_in_a_notification_callback_ends_the_listener_loudly(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the listener died silently and the gateway stayed ready with its cache off.
    Now the death is logged once, counted, marks the task dead, and switches the cache
    off for good (on_lost runs and on_connected never again)."""
    metrics = new_metrics()
    watch = TaskWatch(metrics.background_task_failures)
    events: list[str] = []
    connected = asyncio.Event()

    def on_connected() -> None:
        events.append("connected")
        connected.set()

    def on_invalidation(invalidation: Invalidation) -> None:
        raise RuntimeError("a bug in the callback")

    with caplog.at_level(logging.ERROR, logger="gateway.tasks"):
        async with open_listener(
            database_url,
            on_connected=on_connected,
            on_lost=lambda: events.append("lost"),
            on_invalidation=on_invalidation,
            on_proved=lambda _sent_at: None,
            timeout_seconds=5.0,
            watch=watch,
        ):
            async with asyncio.timeout(DEADLINE_SECONDS):
                await connected.wait()
            query(database_url, "SELECT pg_notify('fleet_node_events', 'revoke:1')")
            await wait_dead(watch, "listener")
    assert events[0] == "connected" and events[-1] == "lost"
    assert events.count("connected") == 1
    assert failures(metrics, "listener") == 1
    assert len([r for r in caplog.records if "listener" in r.getMessage()]) == 1


class BrokenHousekeeping:
    async def sweep(self, now: datetime.datetime) -> SweepCounts:
        raise RuntimeError("a bug in the sweep")


async def test_a_dying_sweeper_is_counted_and_makes_readiness_fail(database_url: str) -> None:
    """A sweeper that dies is counted, and readiness fails although the database answers."""
    metrics = new_metrics()
    watch = TaskWatch(metrics.background_task_failures)
    async with open_test_store(database_url) as store:
        readiness = Readiness(store.database, watch, metrics)
        assert await readiness.check() is True
        clock = lambda: datetime.datetime.now(datetime.UTC)  # noqa: E731
        async with open_sweeper(BrokenHousekeeping(), clock, 0.0, watch):  # type: ignore[arg-type]
            await wait_dead(watch, "sweeper")
            assert await readiness.check() is False
    assert failures(metrics, "sweeper") == 1
    assert metrics.ready._value.get() == 0


def gateway_connections(database_url: str) -> int:
    rows = query(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()",
    )
    return int(rows[0][0])


async def test_a_start_that_fails_half_way_leaves_no_connection_or_task(
    database_url: str,
) -> None:
    """When something after the services fails to start, the pool, the LISTEN connection
    and every background task are gone afterwards."""

    @contextlib.asynccontextmanager
    async def failing_start() -> AsyncIterator[None]:
        async with open_services(Config(database_url=database_url), new_metrics()) as opened:
            async with asyncio.timeout(DEADLINE_SECONDS):
                await opened.listener.connects.wait_for(1)
            assert await opened.readiness.check() is True  # the pool holds a connection
            raise RuntimeError("the next part of start-up failed")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="next part"):
        async with failing_start():
            pass  # pragma: no cover
    assert gateway_connections(database_url) == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("fleet-")]


async def test_draining_an_idle_writer_ends_at_once() -> None:
    """Closing a writer with nothing queued returns as soon as its task confirms the empty
    queue (before: it always waited out its 5 s bound, for the task to end too)."""
    metrics = new_metrics()
    watch = TaskWatch(metrics.background_task_failures)
    async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS / 5):
        async with open_writer(BrokenLastSeenStore(), Config(), metrics, watch):  # type: ignore[arg-type]
            pass
    assert watch.all_alive()
