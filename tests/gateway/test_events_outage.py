"""The offline scan across a PostgreSQL outage: it fails quietly while the database is down
and, once it is back, records every OFFLINE it missed, once. Runs on a private cluster,
since it stops PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from gateway.dev.pgcluster import Cluster, find_bindir, make_cluster_root
from gateway.store import schema
from tests.support.gateway_events import beater, kinds
from tests.support.gateway_services import FakeClock, enroll, make_config, make_org, open_harness

pytestmark = pytest.mark.asyncio

RECOVERY_SECONDS = 30.0


@pytest.fixture
def running_cluster() -> Iterator[Cluster]:
    """A private, running cluster whose ``postgres`` database holds the schema."""
    cluster = Cluster(root=make_cluster_root(), bindir=find_bindir())
    try:
        cluster.init()
        cluster.start(fsync=False)
        asyncio.run(schema.migrate(cluster.url()))
        yield cluster
    finally:
        cluster.destroy()


async def test_the_scan_resumes_after_a_database_outage(
    running_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Nodes that went silent while PostgreSQL was down are recorded OFFLINE, once each,
    after it returns; the scan task survives the outage (the gateway is ready again)."""
    url = running_cluster.url()
    clock = FakeClock()
    config = make_config(url, db_timeout_seconds=2.0, offline_scan_interval_seconds=0.05)
    async with open_harness(config, clock=clock) as h:
        org = await make_org(h.services, url)
        nodes = [await enroll(h.services, org, f"edge-{i}") for i in range(3)]
        for node in nodes:
            await (await beater(h.services, clock, node)).beat()

        with caplog.at_level(logging.WARNING, logger="gateway.offline_scan"):
            await asyncio.to_thread(running_cluster.stop)
            clock.advance(200)
            async with asyncio.timeout(RECOVERY_SECONDS):
                while not any("offline scan failed" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        await asyncio.to_thread(running_cluster.start, fsync=False)

        async with asyncio.timeout(RECOVERY_SECONDS):
            while not all("OFFLINE" in kinds(url, n.fleet_node_id) for n in nodes):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            # Readiness is a probe by nature; each attempt is bounded to 1 s itself.
            while not await h.services.readiness.check():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    for node in nodes:
        assert kinds(url, node.fleet_node_id) == ["REGISTERED", "CONFIRMED", "ONLINE", "OFFLINE"]
