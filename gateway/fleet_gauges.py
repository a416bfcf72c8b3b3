"""``fleet_nodes{org,connectivity}`` (SPEC 2.3): refreshed by each replica every 15 s from one
query, never computed per scrape.

The counts are the nodes' recorded liveness (``gateway.store.liveness``), the state the
events describe: they agree with ``fleetctl events`` and lag the clock-based listing by at
most one offline scan (5 s). Every organization is exported with all four connectivities,
zeros included, so alert rules see each series. When refreshes fail (the database is down)
the last counts stay for ``MAX_FAILED_REFRESHES - 1`` more rounds, then the gauge is
cleared: stale counts would look like a healthy fleet, an absent series does not. The next
successful refresh brings every series back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import NoReturn

from prometheus_client import Gauge

from gateway.errors import DatabaseFault, Unavailable
from gateway.store.liveness import LivenessStore
from gateway.store.records import Liveness, LivenessCount
from gateway.tasks import TaskWatch, watched_task

logger = logging.getLogger(__name__)

MAX_FAILED_REFRESHES = 3  # 45 s at the default interval
CONNECTIVITY_LABEL = {
    Liveness.ONLINE: "online",
    Liveness.OFFLINE: "offline",
    Liveness.NEVER_SEEN: "never_seen",
    Liveness.STOPPED: "stopped",
}


class FleetGauges:
    def __init__(self, store: LivenessStore, gauge: Gauge) -> None:
        self._store = store
        self._gauge = gauge
        self._failures = 0

    async def refresh(self) -> None:
        try:
            counts = await self._store.count_by_org()
        except (Unavailable, DatabaseFault) as exc:
            self._failures += 1
            if self._failures == 1:
                logger.warning("fleet_nodes refresh failed: %s", exc)
            if self._failures == MAX_FAILED_REFRESHES:
                logger.warning("fleet_nodes cleared after %s failed refreshes", self._failures)
                self._gauge.clear()
            return
        if self._failures:
            logger.info("fleet_nodes refreshed again after %s failures", self._failures)
        self._failures = 0
        self._show(counts)

    def _show(self, counts: Iterable[LivenessCount]) -> None:
        by_org: dict[str, dict[Liveness, int]] = {}
        for row in counts:
            org = by_org.setdefault(row.org_name, dict.fromkeys(Liveness, 0))
            if row.liveness is not None:
                org[row.liveness] = row.count
        # No await from here on: a scrape sees the old counts or the new ones, never a mix.
        self._gauge.clear()
        for org_name, states in by_org.items():
            for liveness, count in states.items():
                self._gauge.labels(org=org_name, connectivity=CONNECTIVITY_LABEL[liveness]).set(
                    count
                )


async def refresh_forever(gauges: FleetGauges, interval_seconds: float) -> NoReturn:
    while True:
        await gauges.refresh()
        await asyncio.sleep(interval_seconds)


@contextlib.asynccontextmanager
async def open_fleet_gauges(
    store: LivenessStore, gauge: Gauge, interval_seconds: float, watch: TaskWatch
) -> AsyncIterator[FleetGauges]:
    gauges = FleetGauges(store, gauge)
    async with watched_task(
        "fleet_gauges", lambda: refresh_forever(gauges, interval_seconds), watch
    ):
        yield gauges
