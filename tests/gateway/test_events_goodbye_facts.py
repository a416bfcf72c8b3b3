"""Goodbye and node facts (SPEC 4.10, 4.11): a goodbye is written at once and the node is
STOPPED until its next heartbeat; facts are stored with the heartbeat's write, written inside
the debounce window only when they changed; a changed boot id records REBOOTED."""

from __future__ import annotations

import asyncio

import pytest

from fleetwire import messages as m
from gateway.offline_scan import scan_once
from tests.support.gateway_events import beater, facts, kinds, quiet_config
from tests.support.gateway_services import (
    FakeClock,
    Harness,
    Org,
    enroll,
    install_update_counter,
    last_seen_updates,
    make_org,
    open_harness,
    open_test_store,
)

pytestmark = pytest.mark.asyncio

OFFLINE_AFTER = 150.0
C = m.Connectivity


async def listed(h: Harness, org: Org, node_id: int) -> m.FleetNodeSummary:
    reply = await h.services.admin.list_nodes(org.viewer, m.ListFleetNodesRequest())
    (node,) = [n for n in reply.fleet_nodes if n.fleet_node_id == node_id]
    return node


async def listed_ids(h: Harness, org: Org, connectivity: m.Connectivity) -> list[int]:
    reply = await h.services.admin.list_nodes(
        org.viewer, m.ListFleetNodesRequest(connectivity=connectivity)
    )
    return [int(n.fleet_node_id) for n in reply.fleet_nodes]


async def test_goodbye_is_written_at_once_and_stopped_lasts_until_the_next_heartbeat(
    database_url: str,
) -> None:
    """A goodbye inside the debounce window is written; the node is STOPPED (a STOPPED event)
    and stays so past --offline-after, with no OFFLINE; its next heartbeat, however soon,
    is written and makes it ONLINE again."""
    install_update_counter(database_url)
    clock = FakeClock()
    async with (
        open_harness(quiet_config(database_url), clock=clock) as h,
        open_test_store(database_url) as store,
    ):
        org = await make_org(h.services, database_url)
        node = await beater(h.services, clock, await enroll(h.services, org, "edge-1"))
        node_id = node.principal.fleet_node_id
        await node.beat()
        clock.advance(5)
        await node.beat(stopping=True)
        assert last_seen_updates(database_url, node_id) == 2
        assert (await listed(h, org, node_id)).connectivity is C.CONNECTIVITY_STOPPED
        assert await listed_ids(h, org, C.CONNECTIVITY_STOPPED) == [node_id]
        assert await listed_ids(h, org, C.CONNECTIVITY_ONLINE) == []

        clock.advance(10 * OFFLINE_AFTER)
        assert await scan_once(store.liveness, clock, OFFLINE_AFTER) == 0
        assert (await listed(h, org, node_id)).connectivity is C.CONNECTIVITY_STOPPED
        assert await listed_ids(h, org, C.CONNECTIVITY_OFFLINE) == []

        await node.beat()  # a restarted daemon
        assert (await listed(h, org, node_id)).connectivity is C.CONNECTIVITY_ONLINE
        clock.advance(1)
        await node.beat(stopping=True)  # stopped again at once: still inside the window
        clock.advance(1)
        await node.beat()
        assert (await listed(h, org, node_id)).connectivity is C.CONNECTIVITY_ONLINE
        assert last_seen_updates(database_url, node_id) == 5
    assert kinds(database_url, node_id) == [
        "REGISTERED", "CONFIRMED", "ONLINE", "STOPPED", "ONLINE", "STOPPED", "ONLINE",
    ]  # fmt: skip


async def test_facts_are_stored_with_the_heartbeat_and_listed(database_url: str) -> None:
    """Facts sent with a heartbeat are listed from then on (absent before); the same facts
    again inside the window cost no write, changed facts are written at once."""
    install_update_counter(database_url)
    clock = FakeClock()
    async with open_harness(quiet_config(database_url), clock=clock) as h:
        org = await make_org(h.services, database_url)
        node = await beater(h.services, clock, await enroll(h.services, org, "edge-1"))
        node_id = node.principal.fleet_node_id
        assert (await listed(h, org, node_id)).facts is None
        await node.beat(facts=facts())
        assert (await listed(h, org, node_id)).facts == facts()
        assert last_seen_updates(database_url, node_id) == 1

        for _ in range(3):
            clock.advance(5)
            await node.beat(facts=facts())
            await node.beat()
        assert last_seen_updates(database_url, node_id) == 1

        clock.advance(5)
        await node.beat(facts=facts(agent_version="1.0.0", hostname="edge-1.new"))
        assert last_seen_updates(database_url, node_id) == 2
        shown = (await listed(h, org, node_id)).facts
        assert shown == facts(agent_version="1.0.0", hostname="edge-1.new")
        clock.advance(5)
        await node.beat()  # no facts: the stored ones stay
        assert (await listed(h, org, node_id)).facts == shown
    assert kinds(database_url, node_id) == ["REGISTERED", "CONFIRMED", "ONLINE"]


async def test_a_changed_boot_id_records_rebooted(database_url: str) -> None:
    """A new boot id records REBOOTED (after the ONLINE of a node that was away); the first
    facts, the same boot id again, or an empty one (no boot id on that OS) do not."""
    clock = FakeClock()
    async with open_harness(quiet_config(database_url), clock=clock) as h:
        org = await make_org(h.services, database_url)
        node = await beater(h.services, clock, await enroll(h.services, org, "edge-1"))
        node_id = node.principal.fleet_node_id
        await node.beat(facts=facts(boot_id="boot-a"))
        clock.advance(5)
        await node.beat(facts=facts(boot_id="boot-a", agent_version="1.0.0"))
        clock.advance(5)
        await node.beat(facts=facts(boot_id="boot-b"))  # a quick reboot: still online
        clock.advance(OFFLINE_AFTER + 60)
        await node.beat(facts=facts(boot_id="boot-c"))  # a long one: away, then back
        clock.advance(5)
        await node.beat(facts=facts(boot_id=""))
        clock.advance(5)
        await node.beat(facts=facts(boot_id="boot-d"))
    assert kinds(database_url, node_id) == [
        "REGISTERED", "CONFIRMED", "ONLINE", "REBOOTED", "OFFLINE", "ONLINE", "REBOOTED",
    ]  # fmt: skip


async def test_facts_survive_a_later_heartbeat_in_the_same_flush(database_url: str) -> None:
    """Two heartbeats of one node coalesced into one group commit, the first with facts and
    the second without: the facts are stored (the latest heartbeat wins, its facts do not
    vanish)."""
    clock = FakeClock()
    async with open_harness(quiet_config(database_url), clock=clock) as h:
        org = await make_org(h.services, database_url)
        node = await beater(h.services, clock, await enroll(h.services, org, "edge-1"))
        await asyncio.gather(node.beat(facts=facts()), node.beat())
        assert h.metrics.last_seen_statements._value.get() == 1
        assert (await listed(h, org, node.principal.fleet_node_id)).facts == facts()
