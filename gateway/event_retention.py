"""Event retention (SPEC 4.9): events older than ``--event-retention`` (30 days) are deleted,
in batches so no statement holds many rows, every sweep interval (5 minutes)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator
from typing import NoReturn

from gateway.clock import Clock
from gateway.errors import DatabaseFault, Unavailable
from gateway.store.events import EventStore
from gateway.tasks import TaskWatch, watched_task

logger = logging.getLogger(__name__)

RETENTION_BATCH = 10_000


async def expire_events_once(
    store: EventStore, clock: Clock, retention_seconds: float, batch: int = RETENTION_BATCH
) -> int:
    """Delete every event older than the retention; how many."""
    cutoff = clock() - datetime.timedelta(seconds=retention_seconds)
    total = 0
    while True:
        deleted = await store.delete_older_than(cutoff, batch)
        total += deleted
        if deleted < batch:
            return total


async def expire_events_forever(
    store: EventStore, clock: Clock, retention_seconds: float, interval_seconds: float
) -> NoReturn:
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            deleted = await expire_events_once(store, clock, retention_seconds)
        except (Unavailable, DatabaseFault) as exc:
            logger.warning("event retention skipped: %s", exc)
            continue
        if deleted:
            logger.info("deleted %s events older than the retention", deleted)


@contextlib.asynccontextmanager
async def open_event_retention(
    store: EventStore,
    clock: Clock,
    retention_seconds: float,
    interval_seconds: float,
    watch: TaskWatch,
) -> AsyncIterator[None]:
    async with watched_task(
        "event_retention",
        lambda: expire_events_forever(store, clock, retention_seconds, interval_seconds),
        watch,
    ):
        yield
