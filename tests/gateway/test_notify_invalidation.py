"""Cache invalidation by push across two gateways sharing one database (SPEC 3.4, 3.5, 4.4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import attrs
import pytest
import pytest_asyncio

from fleetwire import messages as m
from tests.support.gateway_services import (
    Harness,
    Org,
    enroll,
    handshake,
    make_config,
    make_org,
    open_harness,
    wait_rejected,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio


@attrs.frozen
class Pair:
    a: Harness
    b: Harness
    org: Org


@pytest_asyncio.fixture
async def pair(database_url: str) -> AsyncIterator[Pair]:
    config = make_config(database_url)
    async with open_harness(config) as a, open_harness(config) as b:
        async with asyncio.timeout(10):
            await a.services.listener.connects.wait_for(1)
            await b.services.listener.connects.wait_for(1)
        yield Pair(a, b, await make_org(a.services, database_url))


def hits(h: Harness) -> float:
    return float(h.metrics.session_cache.labels(result="hit")._value.get())


async def cached_on(h: Harness, token: str) -> None:
    """Resolve twice so the second answer provably came from h's cache."""
    await h.services.auth.resolve_session(token)
    before = hits(h)
    await h.services.auth.resolve_session(token)
    assert hits(h) == before + 1


async def test_revoke_on_one_replica_ends_the_session_on_the_other(pair: Pair) -> None:
    """A revoke through one gateway makes the other refuse the node's cached session
    within a second."""
    node = await enroll(pair.a.services, pair.org, "edge-1")
    await cached_on(pair.b, node.session_token)
    await pair.a.services.admin.revoke(
        pair.org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(node.fleet_node_id))
    )
    await wait_rejected(pair.b.services, node.session_token)


async def test_rotation_on_one_replica_ends_the_old_session_on_the_other(pair: Pair) -> None:
    """A new handshake through one gateway kills the old token on the other within a
    second, while the new token works there."""
    node = await enroll(pair.a.services, pair.org, "edge-1")
    await cached_on(pair.b, node.session_token)
    newer = await handshake(pair.a.services, node.api_key, node.key)
    await wait_rejected(pair.b.services, node.session_token)
    principal = await pair.b.services.auth.resolve_session(newer)
    assert principal.fleet_node_id == node.fleet_node_id


async def test_listener_reconnects_after_losing_its_connection(
    pair: Pair, database_url: str
) -> None:
    """When its LISTEN connection is killed a gateway reconnects, and pushes work again."""
    node = await enroll(pair.a.services, pair.org, "edge-1")
    killed = query(
        database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%%'",
    )
    assert len(killed) == 2  # both gateways' listeners
    async with asyncio.timeout(10):
        await pair.b.services.listener.connects.wait_for(2)
    await cached_on(pair.b, node.session_token)
    await pair.a.services.admin.revoke(
        pair.org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(node.fleet_node_id))
    )
    await wait_rejected(pair.b.services, node.session_token)
