"""The gateway with its database down at start, and across a database restart.

These tests stop and start PostgreSQL, so they run on a private cluster of their own,
never on the session's shared one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fleetwire import messages as m
from gateway.dev.pgcluster import Cluster, find_bindir, make_cluster_root
from gateway.errors import Unavailable
from gateway.services import Services
from gateway.store import schema
from tests.support.gateway_services import (
    enroll,
    make_config,
    make_org,
    open_harness,
    wait_rejected,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio

RECOVERY_SECONDS = 15.0


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A private, stopped cluster whose ``postgres`` database holds the schema."""
    cluster = Cluster(root=make_cluster_root(), bindir=find_bindir())
    try:
        cluster.init()
        cluster.start(fsync=False)
        asyncio.run(schema.migrate(cluster.url()))
        cluster.stop()
        yield cluster
    finally:
        cluster.destroy()


async def wait_ready(services: Services) -> None:
    """Poll /readyz's check until it passes (each attempt is bounded to 1 s itself)."""
    async with asyncio.timeout(RECOVERY_SECONDS):
        # Readiness is a probe by nature (what a load balancer does with /readyz).
        while not await services.readiness.check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_starts_without_database_and_recovers(own_cluster: Cluster) -> None:
    """With PostgreSQL down the gateway still starts, answers unavailable and is not
    ready; once PostgreSQL is up it becomes ready and its LISTEN connection comes up."""
    url = own_cluster.url()
    async with open_harness(make_config(url, db_timeout_seconds=2.0)) as h:
        assert await h.services.readiness.check() is False
        with pytest.raises(Unavailable) as caught:
            await h.services.auth.resolve_session("A" * 43)
        assert caught.value.retry_after_seconds is not None
        assert "database" in caught.value.message

        await asyncio.to_thread(own_cluster.start, fsync=False)
        await wait_ready(h.services)
        async with asyncio.timeout(RECOVERY_SECONDS):
            await h.services.listener.connects.wait_for(1)


async def test_survives_a_database_restart(own_cluster: Cluster) -> None:
    """After PostgreSQL restarts, calls, readiness and push invalidation all recover."""
    url = own_cluster.url()
    await asyncio.to_thread(own_cluster.start, fsync=False)
    config = make_config(url, db_timeout_seconds=2.0)
    async with open_harness(config) as a, open_harness(config) as b:
        async with asyncio.timeout(RECOVERY_SECONDS):
            await a.services.listener.connects.wait_for(1)
            await b.services.listener.connects.wait_for(1)
        org = await make_org(a.services, url)
        node = await enroll(a.services, org, "edge-1")

        await asyncio.to_thread(own_cluster.stop)
        assert await a.services.readiness.check() is False
        with pytest.raises(Unavailable):
            await a.services.admin.list_nodes(org.admin, m.ListFleetNodesRequest())

        await asyncio.to_thread(own_cluster.start, fsync=False)
        await wait_ready(a.services)
        await wait_ready(b.services)
        async with asyncio.timeout(RECOVERY_SECONDS):
            await b.services.listener.connects.wait_for(2)

        # b caches the session again, a revokes: b must hear of it through the new LISTEN.
        hits = b.metrics.session_cache.labels(result="hit")
        await b.services.auth.resolve_session(node.session_token)
        before = hits._value.get()
        await b.services.auth.resolve_session(node.session_token)
        assert hits._value.get() == before + 1
        await a.services.admin.revoke(
            org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(node.fleet_node_id))
        )
        await wait_rejected(b.services, node.session_token)
    assert query(url, "SELECT status FROM fleet_nodes") == [("REVOKED",)]
