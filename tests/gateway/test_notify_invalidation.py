"""Cache invalidation by push across two gateways sharing one database (SPEC 3.4, 3.5, 4.4)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import attrs
import pytest
import pytest_asyncio

from fleetwire import messages as m
from gateway.errors import Unauthenticated
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


async def answers_from_cache(h: Harness, token: str) -> bool:
    """Resolve twice: did the second answer come from h's cache?"""
    await h.services.auth.resolve_session(token)
    before = hits(h)
    await h.services.auth.resolve_session(token)
    return hits(h) == before + 1


async def cached_on(h: Harness, token: str) -> None:
    """Resolve twice so the second answer provably came from h's cache."""
    assert await answers_from_cache(h, token)


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


def listen_backend(database_url: str, h: Harness) -> int:
    """The pid of h's LISTEN backend, told apart from the other gateway's by its
    application_name."""
    rows = query(
        database_url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'LISTEN%%' AND application_name = %s",
        (h.services.listener.application_name,),
    )
    assert len(rows) == 1, rows
    return int(rows[0][0])


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The backend stopped (it neither answers nor closes its socket), resumed on the way out."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def listener_up(h: Harness) -> float | None:
    return h.metrics.registry.get_sample_value("fleet_gateway_listener_up")


async def refused_within_a_second(pair: Pair, token: str, since: float) -> None:
    """Ask a for the token at each proof of life of b's listener (one every ~0.3 s) until a
    refuses it: a must not answer it later than 1 s after ``since``."""
    ticks = pair.b.services.listener.proofs
    async with asyncio.timeout(5):
        while True:
            try:
                await pair.a.services.auth.resolve_session(token)
            except Unauthenticated:
                return
            answered_after = time.monotonic() - since
            assert answered_after < 1.0, f"still answered {answered_after:.3f} s later"
            await ticks.wait_for(ticks.value + 1)


async def cache_comes_back(pair: Pair) -> None:
    """a's push channel proves itself again (on the resumed connection or a new one, tried
    at each proof): its cache answers, and pushes reach it."""
    node = await enroll(pair.b.services, pair.org, "edge-after")
    proofs = pair.a.services.listener.proofs
    async with asyncio.timeout(10):
        while not await answers_from_cache(pair.a, node.session_token):
            await proofs.wait_for(proofs.value + 1)
    assert listener_up(pair.a) == 1
    await pair.b.services.admin.revoke(
        pair.org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(node.fleet_node_id))
    )
    await wait_rejected(pair.a.services, node.session_token)


async def test_revoke_holds_within_a_second_when_a_listen_connection_dies_silently(
    pair: Pair, database_url: str
) -> None:
    """A gateway whose LISTEN backend is stopped (no error, no notification) refuses a
    session revoked through another gateway within a second; once the backend resumes its
    cache comes back."""
    node = await enroll(pair.a.services, pair.org, "edge-1")
    await cached_on(pair.a, node.session_token)
    assert listener_up(pair.a) == 1
    with stopped(listen_backend(database_url, pair.a)):
        await pair.b.services.admin.revoke(
            pair.org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(node.fleet_node_id))
        )
        await refused_within_a_second(pair, node.session_token, time.monotonic())
    await cache_comes_back(pair)


async def test_rotation_holds_within_a_second_when_a_listen_connection_dies_silently(
    pair: Pair, database_url: str
) -> None:
    """A gateway whose LISTEN backend is stopped refuses a session replaced through another
    gateway within a second, and serves the new one; its cache comes back afterwards."""
    node = await enroll(pair.a.services, pair.org, "edge-1")
    await cached_on(pair.a, node.session_token)
    with stopped(listen_backend(database_url, pair.a)):
        newer = await handshake(pair.b.services, node.api_key, node.key)
        await refused_within_a_second(pair, node.session_token, time.monotonic())
        principal = await pair.a.services.auth.resolve_session(newer)
        assert principal.fleet_node_id == node.fleet_node_id
    await cache_comes_back(pair)
