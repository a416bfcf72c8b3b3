"""OFFLINE and ONLINE events (SPEC 4.9): recorded once per transition, by one replica at a
time, across replicas, a replica killed mid-scan, and flapping around --offline-after."""

from __future__ import annotations

import asyncio
import datetime

import psycopg2
import pytest

from fleetwire import messages as m
from gateway.errors import NotFound, Unauthenticated, Unavailable
from gateway.offline_scan import scan_once
from tests.support.gateway_events import all_events, beater, kinds, quiet_config
from tests.support.gateway_services import (
    FakeClock,
    enroll,
    install_update_counter,
    last_seen_updates,
    make_config,
    make_org,
    open_harness,
    open_test_store,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio

OFFLINE_AFTER = 150.0
DEADLINE_SECONDS = 30.0


async def test_scan_records_each_silent_node_once(database_url: str) -> None:
    """A node silent for exactly --offline-after is still online; a millisecond later the
    scan records one OFFLINE at the moment it went, and later scans add nothing."""
    clock = FakeClock()
    config = quiet_config(database_url)
    async with open_harness(config, clock=clock) as h, open_test_store(database_url) as store:
        org = await make_org(h.services, database_url)
        nodes = [await enroll(h.services, org, f"edge-{i}") for i in range(3)]
        for node in nodes:
            await (await beater(h.services, clock, node)).beat()
        seen_at = clock.now

        clock.advance(OFFLINE_AFTER)
        assert await scan_once(store.liveness, clock, OFFLINE_AFTER) == 0
        clock.advance(0.001)
        assert await scan_once(store.liveness, clock, OFFLINE_AFTER) == 3
        assert await scan_once(store.liveness, clock, OFFLINE_AFTER) == 0
        clock.advance(3600)
        assert await scan_once(store.liveness, clock, OFFLINE_AFTER) == 0

    went = seen_at + datetime.timedelta(seconds=OFFLINE_AFTER)
    for node in nodes:
        assert kinds(database_url, node.fleet_node_id) == [
            "REGISTERED", "CONFIRMED", "ONLINE", "OFFLINE",
        ]  # fmt: skip
    offline = [at for _node, kind, at in all_events(database_url) if kind == "OFFLINE"]
    assert offline == [went] * 3


async def test_two_replicas_record_each_transition_once(database_url: str) -> None:
    """Two gateways scanning one database at the same time, in small batches, record
    exactly one OFFLINE per node; the advisory lock lets one scan at a time."""
    clock = FakeClock()
    config = quiet_config(database_url)
    async with (
        open_harness(config, clock=clock) as a,
        open_harness(config, clock=clock) as b,
        open_test_store(database_url) as store_a,
        open_test_store(database_url) as store_b,
    ):
        org = await make_org(a.services, database_url)
        nodes = [await enroll(a.services, org, f"edge-{i}") for i in range(40)]
        for i, node in enumerate(nodes):
            await (await beater((a, b)[i % 2].services, clock, node)).beat()
        clock.advance(OFFLINE_AFTER + 1)
        results = await asyncio.gather(
            *(
                scan_once(store, clock, OFFLINE_AFTER, batch=3)
                for _ in range(5)
                for store in (store_a.liveness, store_b.liveness)
            )
        )
    assert sum(r or 0 for r in results) == 40
    assert any(r is None for r in results)  # a scan that found the lock taken skipped
    offline = [node for node, kind, _at in all_events(database_url) if kind == "OFFLINE"]
    assert sorted(offline) == sorted(node.fleet_node_id for node in nodes)


async def wait_blocked_scan_pid(database_url: str) -> int:
    """The backend whose scan statement waits for a lock (the test holds it)."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            rows = query(
                database_url,
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE %s",
                ("%WITH due AS%",),
            )
            if rows:
                return int(rows[0][0])
            await asyncio.sleep(0.01)  # PostgreSQL has no event to wait on


async def test_a_replica_killed_mid_scan_loses_and_doubles_nothing(database_url: str) -> None:
    """Replica A dies (its connection is terminated) after its scan marked nodes offline
    but before it committed: nothing of it remains, replica B's scans skip while A holds
    the scan, and B then records every OFFLINE exactly once."""
    clock = FakeClock()
    config = quiet_config(database_url)
    async with (
        open_harness(config, clock=clock) as a,
        open_test_store(database_url) as store_a,
        open_test_store(database_url) as store_b,
    ):
        org = await make_org(a.services, database_url)
        nodes = [await enroll(a.services, org, f"edge-{i}") for i in range(5)]
        for node in nodes:
            await (await beater(a.services, clock, node)).beat()
        clock.advance(OFFLINE_AFTER + 1)

        # Hold the event-id row: A's statement marks the nodes, then waits for it.
        blocker = psycopg2.connect(database_url)
        try:
            with blocker.cursor() as cur:
                cur.execute("UPDATE fleet_node_event_ids SET last_id = last_id")
            scan_a = asyncio.ensure_future(scan_once(store_a.liveness, clock, OFFLINE_AFTER))
            pid = await wait_blocked_scan_pid(database_url)
            assert await scan_once(store_b.liveness, clock, OFFLINE_AFTER) is None
            query(database_url, "SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(Unavailable):
                await scan_a
        finally:
            blocker.rollback()
            blocker.close()
        assert query(database_url, "SELECT count(*) FROM fleet_node_events WHERE kind = 'OFFLINE'")[
            0
        ] == (0,)
        assert query(database_url, "SELECT DISTINCT liveness FROM fleet_nodes") == [("ONLINE",)]
        assert await scan_once(store_b.liveness, clock, OFFLINE_AFTER) == 5
        assert await scan_once(store_b.liveness, clock, OFFLINE_AFTER) == 0
    for node in nodes:
        assert kinds(database_url, node.fleet_node_id)[-2:] == ["ONLINE", "OFFLINE"]


async def test_flapping_gives_one_pair_per_crossing(database_url: str) -> None:
    """A node that goes silent past --offline-after twice and comes back each time gets
    exactly two OFFLINE/ONLINE pairs, however often the scan runs and it heartbeats; a
    silence just short of the threshold gets none."""
    clock = FakeClock()
    config = quiet_config(database_url)
    async with open_harness(config, clock=clock) as h, open_test_store(database_url) as store:
        org = await make_org(h.services, database_url)
        node = await beater(h.services, clock, await enroll(h.services, org, "flappy"))
        await node.beat()
        for silence in (OFFLINE_AFTER + 0.5, OFFLINE_AFTER - 0.5, OFFLINE_AFTER + 0.5):
            clock.advance(silence)
            for _ in range(3):
                await scan_once(store.liveness, clock, OFFLINE_AFTER)
            for _ in range(3):
                await node.beat()
                await scan_once(store.liveness, clock, OFFLINE_AFTER)
                clock.advance(0.1)
    assert kinds(database_url, node.principal.fleet_node_id) == [
        "REGISTERED", "CONFIRMED", "ONLINE", "OFFLINE", "ONLINE", "OFFLINE", "ONLINE",
    ]  # fmt: skip


async def test_a_heartbeat_records_the_offline_the_scan_has_not_seen_yet(
    database_url: str,
) -> None:
    """A node back after a silence no scan saw (all gateways were down, say) records the
    OFFLINE at the moment it went and then ONLINE; the next scan adds nothing."""
    clock = FakeClock()
    config = quiet_config(database_url)
    async with open_harness(config, clock=clock) as h, open_test_store(database_url) as store:
        org = await make_org(h.services, database_url)
        node = await beater(h.services, clock, await enroll(h.services, org, "edge-1"))
        await node.beat()
        went = clock.now + datetime.timedelta(seconds=OFFLINE_AFTER)
        clock.advance(600)
        await node.beat()
        back = clock.now
        assert await scan_once(store.liveness, clock, OFFLINE_AFTER) == 0
    events = [(kind, at) for _node, kind, at in all_events(database_url)][-2:]
    assert events == [("OFFLINE", went), ("ONLINE", back)]


async def test_a_debounced_heartbeat_records_nothing_and_writes_nothing(
    database_url: str,
) -> None:
    """ONLINE rides on the first write; the heartbeats the debounce absorbs add neither an
    UPDATE nor an event."""
    install_update_counter(database_url)
    clock = FakeClock()
    async with open_harness(quiet_config(database_url), clock=clock) as h:
        org = await make_org(h.services, database_url)
        node = await beater(h.services, clock, await enroll(h.services, org, "edge-1"))
        for _ in range(20):
            await node.beat()
            clock.advance(2)
        statements = h.metrics.last_seen_statements._value.get()
    assert last_seen_updates(database_url, node.principal.fleet_node_id) == 1
    assert statements == 1
    assert kinds(database_url, node.principal.fleet_node_id) == [
        "REGISTERED", "CONFIRMED", "ONLINE",
    ]  # fmt: skip


async def test_a_revoked_node_gets_no_event_after_revoked(database_url: str) -> None:
    """After REVOKED nothing is recorded for the node: no OFFLINE from the scan, and its
    heartbeats are refused."""
    clock = FakeClock()
    async with (
        open_harness(quiet_config(database_url), clock=clock) as h,
        open_test_store(database_url) as store,
    ):
        org = await make_org(h.services, database_url)
        enrolled = await enroll(h.services, org, "edge-1")
        node = await beater(h.services, clock, enrolled)
        await node.beat()
        await h.services.admin.revoke(
            org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(enrolled.fleet_node_id))
        )
        clock.advance(OFFLINE_AFTER + 1)
        assert await scan_once(store.liveness, clock, OFFLINE_AFTER) == 0
        with pytest.raises((NotFound, Unauthenticated)):
            await node.beat()
    assert kinds(database_url, enrolled.fleet_node_id) == [
        "REGISTERED", "CONFIRMED", "ONLINE", "REVOKED",
    ]  # fmt: skip


async def test_the_gateway_records_offline_within_30_seconds(database_url: str) -> None:
    """With the default scan interval, the gateway's own background scan records a node's
    OFFLINE within 30 s of it going silent past --offline-after."""
    clock = FakeClock()
    config = make_config(database_url)  # the default intervals
    async with open_harness(config, clock=clock) as h:
        org = await make_org(h.services, database_url)
        node = await beater(h.services, clock, await enroll(h.services, org, "edge-1"))
        await node.beat()
        clock.advance(OFFLINE_AFTER + 0.001)
        async with asyncio.timeout(30):
            while "OFFLINE" not in kinds(database_url, node.principal.fleet_node_id):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
