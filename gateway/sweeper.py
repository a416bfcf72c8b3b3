"""Housekeeping (SPEC 3.7): delete expired challenges and sessions, expire stale
enrollments (soft-deleting their unconfirmed nodes) every few minutes. Correctness never
depends on it: every lookup checks expiry itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import NoReturn

from gateway.clock import Clock
from gateway.errors import DatabaseFault, Unavailable
from gateway.store.housekeeping import Housekeeping
from gateway.tasks import TaskWatch, watched_task

logger = logging.getLogger(__name__)


async def sweep_once(housekeeping: Housekeeping, clock: Clock) -> None:
    swept = await housekeeping.sweep(clock())
    if swept:
        logger.info(
            "swept challenges=%s sessions=%s enrollments=%s nodes=%s",
            swept.challenges, swept.sessions, swept.enrollments, swept.nodes,
        )  # fmt: skip


async def sweep_forever(
    housekeeping: Housekeeping, clock: Clock, interval_seconds: float
) -> NoReturn:
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await sweep_once(housekeeping, clock)
        except (Unavailable, DatabaseFault) as exc:
            logger.warning("sweep skipped: %s", exc)


@contextlib.asynccontextmanager
async def open_sweeper(
    housekeeping: Housekeeping, clock: Clock, interval_seconds: float, watch: TaskWatch
) -> AsyncIterator[None]:
    async with watched_task(
        "sweeper", lambda: sweep_forever(housekeeping, clock, interval_seconds), watch
    ):
        yield
