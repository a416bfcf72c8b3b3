"""ListFleetNodeEvents and GetFleetSummary (SPEC 2.2) through the services, and event
retention (SPEC 4.9)."""

from __future__ import annotations

import datetime

import nacl.signing
import pytest

from fleetwire import messages as m
from gateway.errors import NotFound
from gateway.event_retention import expire_events_once
from gateway.offline_scan import scan_once
from tests.support.gateway_events import all_events, beater, kinds, quiet_config
from tests.support.gateway_services import (
    FakeClock,
    enroll,
    make_org,
    new_code,
    open_harness,
    open_test_store,
    register,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio

OFFLINE_AFTER = 150.0
K = m.FleetNodeEventKind


def events_request(after: int = 0, node: int = 0, size: int = 0) -> m.ListFleetNodeEventsRequest:
    return m.ListFleetNodeEventsRequest(
        after_event_id=m.Int64(after), fleet_node_id=m.Int64(node), page_size=m.Int32(size)
    )


async def test_events_page_oldest_first_and_past_the_newest(database_url: str) -> None:
    """Pages come oldest first with lastEventId the last returned; past the newest event a
    page is empty and lastEventId stays where the caller was."""
    clock = FakeClock()
    async with open_harness(quiet_config(database_url), clock=clock) as h:
        org = await make_org(h.services, database_url)
        a = await enroll(h.services, org, "a")
        clock.advance(1)
        b = await enroll(h.services, org, "b")
        list_events = h.services.events.list_events

        first = await list_events(org.viewer, events_request(size=3))
        assert [(e.fleet_node_id, e.kind) for e in first.events] == [
            (a.fleet_node_id, K.FLEET_NODE_EVENT_KIND_REGISTERED),
            (a.fleet_node_id, K.FLEET_NODE_EVENT_KIND_CONFIRMED),
            (b.fleet_node_id, K.FLEET_NODE_EVENT_KIND_REGISTERED),
        ]
        assert first.last_event_id == first.events[-1].event_id
        assert first.events[0].occurred_at == clock.now - datetime.timedelta(seconds=1)
        second = await list_events(org.viewer, events_request(after=first.last_event_id, size=3))
        assert [e.kind for e in second.events] == [K.FLEET_NODE_EVENT_KIND_CONFIRMED]
        assert second.events[0].event_id > first.last_event_id
        empty = await list_events(org.viewer, events_request(after=second.last_event_id))
        assert empty.events == () and empty.last_event_id == second.last_event_id
        far = await list_events(org.viewer, events_request(after=10**15))
        assert far.events == () and far.last_event_id == 10**15
        nothing_yet = await list_events(org.viewer, events_request())
        assert len(nothing_yet.events) == 4  # default page size: all of them


async def test_events_are_per_organization_and_per_node(database_url: str) -> None:
    """A node filter returns that node's events only; another organization's events are
    never shown, and its node id (or an unknown one) is not_found; a revoked node's events
    stay readable."""
    async with open_harness(quiet_config(database_url)) as h:
        acme = await make_org(h.services, database_url, "acme")
        globex = await make_org(h.services, database_url, "globex")
        a1 = await enroll(h.services, acme, "a1")
        g1 = await enroll(h.services, globex, "g1")
        a2 = await enroll(h.services, acme, "a2")
        await h.services.admin.revoke(
            acme.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(a1.fleet_node_id))
        )
        list_events = h.services.events.list_events

        everything = await list_events(acme.viewer, events_request())
        assert {e.fleet_node_id for e in everything.events} == {a1.fleet_node_id, a2.fleet_node_id}
        mine = await list_events(acme.admin, events_request(node=a1.fleet_node_id))
        assert [e.kind for e in mine.events] == [
            K.FLEET_NODE_EVENT_KIND_REGISTERED,
            K.FLEET_NODE_EVENT_KIND_CONFIRMED,
            K.FLEET_NODE_EVENT_KIND_REVOKED,
        ]
        for stranger in (g1.fleet_node_id, 10**12):
            with pytest.raises(NotFound):
                await list_events(acme.viewer, events_request(node=stranger))
        quiet = await list_events(acme.viewer, events_request(after=10**12, node=a2.fleet_node_id))
        assert quiet.events == () and quiet.last_event_id == 10**12


async def test_summary_counts_and_recently_offline(database_url: str) -> None:
    """Counts are computed when read: confirmed nodes by connectivity, nodes awaiting
    confirmation apart, revoked ones nowhere; recentlyOffline lists the nodes whose OFFLINE
    is within the last hour and that are still offline, most recent first."""
    clock = FakeClock()
    async with (
        open_harness(quiet_config(database_url), clock=clock) as h,
        open_test_store(database_url) as store,
    ):
        org = await make_org(h.services, database_url)
        nodes = {name: await enroll(h.services, org, name) for name in ("old", "new", "back")}
        never = await enroll(h.services, org, "never")
        stopped = await enroll(h.services, org, "stopped")
        revoked = await enroll(h.services, org, "revoked")
        await register(
            h.services,
            await new_code(h.services, org),
            "waiting",
            nacl.signing.SigningKey.generate(),
        )
        await (await beater(h.services, clock, nodes["old"])).beat()
        clock.advance(4000)  # "old" went offline at +150 s: more than an hour before the end
        for name in ("new", "back"):
            await (await beater(h.services, clock, nodes[name])).beat()
        await (await beater(h.services, clock, stopped)).beat(stopping=True)
        await (await beater(h.services, clock, revoked)).beat()
        clock.advance(OFFLINE_AFTER + 1)
        await scan_once(store.liveness, clock, OFFLINE_AFTER)
        await h.services.admin.revoke(
            org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(revoked.fleet_node_id))
        )
        clock.advance(OFFLINE_AFTER)
        await (await beater(h.services, clock, nodes["back"])).beat()

        summary = await h.services.events.summary(org.viewer, m.Empty())
        assert (summary.online, summary.offline, summary.never_seen, summary.stopped) == (
            1, 2, 1, 1,
        )  # fmt: skip
        assert summary.awaiting_confirmation == 1
        assert [n.name for n in summary.recently_offline] == ["new"]
        assert summary.recently_offline[0].connectivity is m.Connectivity.CONNECTIVITY_OFFLINE
        clock.advance(3600)
        later = await h.services.events.summary(org.admin, m.Empty())
        assert later.recently_offline == ()
        assert never.fleet_node_id not in {n.fleet_node_id for n in summary.recently_offline}


async def test_recently_offline_is_most_recent_first_and_at_most_100(database_url: str) -> None:
    """Of 101 nodes that went offline one second apart, the 100 most recent are listed,
    newest first."""
    clock = FakeClock()
    async with (
        open_harness(quiet_config(database_url), clock=clock) as h,
        open_test_store(database_url) as store,
    ):
        org = await make_org(h.services, database_url)
        query(
            database_url,
            "INSERT INTO fleet_nodes (org_id, name, identity_pubkey, identity_fingerprint,"
            " status, created_at, last_seen_at, liveness)"
            " SELECT %s, 'n-' || i, sha256(i::text::bytea), 'f', 'CONFIRMED', %s,"
            "        %s::timestamptz + i * interval '1 second', 'ONLINE'"
            " FROM generate_series(1, 101) AS i",
            (org.org_id, clock.now, clock.now),
        )
        clock.advance(101 + OFFLINE_AFTER + 1)
        assert await scan_once(store.liveness, clock, OFFLINE_AFTER, batch=30) == 101
        summary = await h.services.events.summary(org.viewer, m.Empty())
    assert [n.name for n in summary.recently_offline] == [f"n-{i}" for i in range(101, 1, -1)]


async def test_retention_deletes_old_events_in_batches(database_url: str) -> None:
    """Events older than --event-retention go, a batch at a time; newer ones stay."""
    clock = FakeClock()
    retention = 30 * 86400.0
    async with (
        open_harness(quiet_config(database_url), clock=clock) as h,
        open_test_store(database_url) as store,
    ):
        org = await make_org(h.services, database_url)
        old = [await enroll(h.services, org, f"old-{i}") for i in range(3)]
        clock.advance(retention - 10)
        recent = await enroll(h.services, org, "recent")
        clock.advance(11)
        assert await expire_events_once(store.events, clock, retention, batch=2) == 6
        assert await expire_events_once(store.events, clock, retention, batch=2) == 0
    assert [node for node, _kind, _at in all_events(database_url)] == [recent.fleet_node_id] * 2
    assert kinds(database_url, old[0].fleet_node_id) == []
