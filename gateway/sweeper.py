"""Housekeeping (SPEC 3.7): delete expired challenges and sessions, expire stale
enrollments (soft-deleting their unconfirmed nodes). Correctness never depends on
it: every lookup checks expiry itself."""

from __future__ import annotations

import asyncio
import logging

from gateway.clock import Clock
from gateway.db import Database, DatabaseFault
from gateway.errors import Unavailable

logger = logging.getLogger(__name__)


async def sweep_once(database: Database, clock: Clock) -> None:
    challenges, sessions, enrollments, nodes = await database.sweep(clock())
    if challenges or sessions or enrollments or nodes:
        logger.info(
            "swept challenges=%s sessions=%s enrollments=%s nodes=%s",
            challenges, sessions, enrollments, nodes,
        )  # fmt: skip


async def sweep_forever(database: Database, clock: Clock, interval_seconds: float) -> None:
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await sweep_once(database, clock)
        except (Unavailable, DatabaseFault) as exc:
            logger.warning("sweep skipped: %s", exc)
