"""A gateway's garbage-collector watch: pauses in /metrics, a frozen heap that forgets."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from fleetwire import messages as m
from gateway.heap import HeapWatch
from tests.support.gateway_services import (
    Harness,
    enroll,
    make_config,
    make_org,
    open_harness,
    wait_rejected,
)

pytestmark = pytest.mark.asyncio

PAUSES = "fleet_gateway_gc_pause_seconds"


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (other tests' heaps are not ours)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def sample(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


def watches() -> list[HeapWatch]:
    return [callback for callback in gc.callbacks if isinstance(callback, HeapWatch)]


async def test_every_collection_is_counted_in_the_pause_histogram(database_url: str) -> None:
    """Each garbage collection while the gateway runs adds one observation of its duration
    to fleet_gateway_gc_pause_seconds."""
    async with open_harness(make_config(database_url)) as h:
        registry = h.metrics.registry
        before = sample(registry, f"{PAUSES}_count")
        for generation in (0, 1, 2):
            gc.collect(generation)
        assert sample(registry, f"{PAUSES}_count") >= before + 3
        assert sample(registry, f"{PAUSES}_sum") > 0


async def test_the_callback_lives_and_leaves_with_the_services(database_url: str) -> None:
    """Each gateway's services install one callback and remove it on close, so gateways
    opened one after another in a process do not stack callbacks or leave the heap frozen."""
    assert watches() == []
    for _ in range(2):
        async with open_harness(make_config(database_url)) as a:
            async with open_harness(make_config(database_url)):
                assert len(watches()) == 2
            assert len(watches()) == 1
            gc.collect()
            assert gc.get_freeze_count() > 0
        assert watches() == []
        assert gc.get_freeze_count() == 0
    assert sample(a.metrics.registry, f"{PAUSES}_count") > 0


def cache_hits(h: Harness) -> float:
    return (
        h.metrics.registry.get_sample_value("fleet_gateway_session_cache_total", {"result": "hit"})
        or 0.0
    )


async def test_a_frozen_cache_still_forgets_evicted_and_revoked_sessions(
    database_url: str,
) -> None:
    """After the heap holding the cached sessions is frozen, a session evicted from the
    full cache is looked up again and a revoked node's session is refused."""
    async with open_harness(make_config(database_url, session_cache_size=2)) as h:
        async with asyncio.timeout(10):
            await h.services.listener.connects.wait_for(1)
        org = await make_org(h.services, database_url)
        first, second, third = [await enroll(h.services, org, f"edge-{i}") for i in range(3)]
        for node in (first, second):
            await h.services.auth.resolve_session(node.session_token)
        hits = cache_hits(h)
        await h.services.auth.resolve_session(first.session_token)
        assert cache_hits(h) == hits + 1  # cached
        gc.collect()
        assert gc.get_freeze_count() > 0  # the cached sessions are frozen now
        await h.services.auth.resolve_session(third.session_token)  # evicts the second
        hits = cache_hits(h)
        await h.services.auth.resolve_session(second.session_token)
        assert cache_hits(h) == hits  # looked up again, not answered from the cache
        await h.services.admin.revoke(
            org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(first.fleet_node_id))
        )
        await wait_rejected(h.services, first.session_token)
