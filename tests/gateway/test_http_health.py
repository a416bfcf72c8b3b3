"""Health, readiness and metrics endpoints (SPEC 2.3)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio

from fleetwire import procedures as p
from gateway.app import create_app
from gateway.config import Config
from gateway.dev.pgcluster import Cluster, find_bindir, make_cluster_root
from tests.support.gateway_http import MonotonicClock

pytestmark = pytest.mark.asyncio


@pytest.fixture
def stopped_cluster() -> Iterator[Cluster]:
    """A private cluster of this test's own, initialised but not running."""
    cluster = Cluster(root=make_cluster_root(), bindir=find_bindir())
    cluster.init()
    try:
        yield cluster
    finally:
        cluster.destroy()


async def ready_status(client: Any) -> tuple[int, str | None]:
    async with client.get("/readyz") as resp:
        return resp.status, resp.headers.get("Retry-After")


async def wait_ready_status(client: Any, wanted: int, clock: MonotonicClock) -> int:
    """The pool may need one failed query to notice a restart: ask a few times, each a
    second later on the app's clock (an answer is cached for a second)."""
    status = 0
    for _ in range(20):
        clock.now += 1.0
        status, _retry = await ready_status(client)
        if status == wanted:
            break
    return status


async def test_readyz_follows_the_database(aiohttp_client: Any, stopped_cluster: Cluster) -> None:
    """/readyz is 503 with Retry-After while PostgreSQL is down (and RPCs are unavailable
    with Retry-After), 200 once it answers; /healthz is 200 throughout."""
    config = Config(database_url=stopped_cluster.url("postgres"), db_timeout_seconds=1.0)
    clock = MonotonicClock()
    client = await aiohttp_client(create_app(config, clock=clock))  # the database is down

    status, retry_after = await ready_status(client)
    assert status == 503
    assert retry_after is not None and int(retry_after) >= 1
    async with client.get("/healthz") as resp:
        assert resp.status == 200
    register = {
        "enrollmentToken": "c" * 43,
        "name": "edge",
        "identityPubkey": base64.b64encode(bytes(32)).decode(),
    }
    async with client.post(p.REGISTER.path, json=register) as resp:
        assert resp.status == 503
        assert (await resp.json())["code"] == "unavailable"
        assert int(resp.headers["Retry-After"]) >= 1

    await asyncio.to_thread(stopped_cluster.start, fsync=False)
    assert await wait_ready_status(client, 200, clock) == 200

    await asyncio.to_thread(stopped_cluster.stop, "immediate")
    assert await wait_ready_status(client, 503, clock) == 503
    async with client.get("/healthz") as resp:
        assert resp.status == 200


@pytest_asyncio.fixture
async def client(aiohttp_client: Any, database_url: str) -> Any:
    return await aiohttp_client(create_app(Config(database_url=database_url)))


async def test_metrics_exposition(client: Any) -> None:
    """/metrics is Prometheus text with the gateway's metric families."""
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    for family in (
        "fleet_gateway_requests",
        "fleet_gateway_request_seconds",
        "fleet_gateway_heartbeats_received",
        "fleet_gateway_last_seen_statements",
        "fleet_gateway_rate_limited",
        "fleet_gateway_db_pool_in_use",
    ):
        assert f"# TYPE {family}" in text


async def test_metrics_registries_are_per_app(aiohttp_client: Any, database_url: str) -> None:
    """Two apps in one process do not share counters."""
    first = await aiohttp_client(create_app(Config(database_url=database_url)))
    second = await aiohttp_client(create_app(Config(database_url=database_url)))
    register = "/fleetnodegateway.v1.FleetNodeGatewayService/Register"
    headers = {"Content-Type": "application/json"}
    async with first.post(register, data=b"{}", headers=headers) as resp:
        assert resp.status == 400
    async with first.get("/metrics") as resp:
        assert 'code="invalid_argument"' in await resp.text()
    async with second.get("/metrics") as resp:
        assert 'code="invalid_argument"' not in await resp.text()


async def test_a_scrape_alone_keeps_the_ready_gauge_current(
    aiohttp_client: Any, stopped_cluster: Cluster
) -> None:
    """fleet_gateway_ready follows the database at each /metrics scrape even when nothing
    asks /readyz (the FleetGatewayNotReady alert reads the gauge)."""
    config = Config(database_url=stopped_cluster.url("postgres"), db_timeout_seconds=1.0)
    clock = MonotonicClock()
    client = await aiohttp_client(create_app(config, clock=clock))

    async def ready_gauge() -> str:
        clock.now += 1.0  # past the cached probe's second
        async with client.get("/metrics") as resp:
            (line,) = [
                s for s in (await resp.text()).splitlines() if s.startswith("fleet_gateway_ready ")
            ]
            return line.split()[1]

    assert await ready_gauge() == "0.0"
    await asyncio.to_thread(stopped_cluster.start, fsync=False)
    for _ in range(20):  # the pool may need one failed query to notice the restart
        if await ready_gauge() == "1.0":
            break
    assert await ready_gauge() == "1.0"
