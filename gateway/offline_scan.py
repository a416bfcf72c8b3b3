"""The offline scan (SPEC 4.9): OFFLINE recorded within 30 s, once, by one replica at a time.

Every ``offline_scan_interval_seconds`` (5 s) each replica tries the scan; the one that gets
the advisory lock marks the ONLINE nodes silent past ``--offline-after`` as OFFLINE and
records their events, a batch (one statement) at a time, until a batch comes back short
(``gateway.store.liveness``). The others skip that round. The state it works from is in
the database (each node's recorded liveness), so a scan that fails (the database is down,
the replica dies mid-batch) loses nothing: the next one, here or on another replica, picks
up every node still unrecorded. A node flapping around the threshold gets one OFFLINE per
crossing and one ONLINE per return (its heartbeat's write), never more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import NoReturn

from gateway.clock import Clock
from gateway.errors import DatabaseFault, Unavailable
from gateway.store.liveness import LivenessStore
from gateway.tasks import TaskWatch, watched_task

logger = logging.getLogger(__name__)

SCAN_BATCH = 1000


async def scan_once(
    store: LivenessStore, clock: Clock, offline_after_seconds: float, batch: int = SCAN_BATCH
) -> int | None:
    """Record every node that went offline and is not recorded yet; how many, or None when
    another replica held the scan before this one recorded any."""
    total = 0
    while True:
        recorded = await store.mark_offline(clock(), offline_after_seconds, batch)
        if recorded is None:
            return total or None
        total += recorded
        if recorded < batch:
            return total


async def scan_forever(
    store: LivenessStore, clock: Clock, offline_after_seconds: float, interval_seconds: float
) -> NoReturn:
    failing = False
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            recorded = await scan_once(store, clock, offline_after_seconds)
        except (Unavailable, DatabaseFault) as exc:
            if not failing:  # once per outage, not every few seconds
                logger.warning("offline scan failed, retrying every %ss: %s", interval_seconds, exc)
            failing = True
            continue
        if failing:
            logger.info("offline scan resumed")
            failing = False
        if recorded:
            logger.info("recorded %s nodes offline", recorded)


@contextlib.asynccontextmanager
async def open_offline_scanner(
    store: LivenessStore,
    clock: Clock,
    offline_after_seconds: float,
    interval_seconds: float,
    watch: TaskWatch,
) -> AsyncIterator[None]:
    async with watched_task(
        "offline_scan",
        lambda: scan_forever(store, clock, offline_after_seconds, interval_seconds),
        watch,
    ):
        yield
