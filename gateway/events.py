"""The fleet's story for operators (SPEC 2.2, 4.9): ListFleetNodeEvents and GetFleetSummary.

Both are open to admin and viewer tokens and scoped to the token's organization. A
``fleetNodeId`` filter naming a node the organization never had (another organization's
included) is ``not_found``, like every other admin call, so a mistyped id under
``fleetctl events --follow`` fails at once instead of waiting forever; a node that was
revoked keeps its events until retention removes them.
"""

from __future__ import annotations

import datetime

from fleetwire import messages as m
from gateway.admin import NODE_NOT_FOUND, summary_of
from gateway.clock import Clock
from gateway.config import Config
from gateway.errors import NotFound
from gateway.principals import AdminPrincipal
from gateway.store.events import EventStore
from gateway.store.records import EventKind, EventRecord
from gateway.store.summary import SummaryStore

RECENTLY_OFFLINE_SECONDS = 3600.0
RECENTLY_OFFLINE_LIMIT = 100

_KIND = {
    EventKind.REGISTERED: m.FleetNodeEventKind.FLEET_NODE_EVENT_KIND_REGISTERED,
    EventKind.CONFIRMED: m.FleetNodeEventKind.FLEET_NODE_EVENT_KIND_CONFIRMED,
    EventKind.REVOKED: m.FleetNodeEventKind.FLEET_NODE_EVENT_KIND_REVOKED,
    EventKind.ONLINE: m.FleetNodeEventKind.FLEET_NODE_EVENT_KIND_ONLINE,
    EventKind.OFFLINE: m.FleetNodeEventKind.FLEET_NODE_EVENT_KIND_OFFLINE,
    EventKind.STOPPED: m.FleetNodeEventKind.FLEET_NODE_EVENT_KIND_STOPPED,
    EventKind.REBOOTED: m.FleetNodeEventKind.FLEET_NODE_EVENT_KIND_REBOOTED,
}


def event_of(record: EventRecord) -> m.FleetNodeEvent:
    return m.FleetNodeEvent(
        event_id=m.Int64(record.event_id),
        fleet_node_id=m.Int64(record.fleet_node_id),
        kind=_KIND[record.kind],
        occurred_at=record.occurred_at,
    )


class FleetEvents:
    def __init__(
        self, events: EventStore, summary: SummaryStore, config: Config, clock: Clock
    ) -> None:
        self._events = events
        self._summary = summary
        self._offline_after = datetime.timedelta(seconds=config.offline_after_seconds)
        self._clock = clock

    async def list_events(
        self, p: AdminPrincipal, req: m.ListFleetNodeEventsRequest
    ) -> m.ListFleetNodeEventsResponse:
        """Events after ``afterEventId``, oldest first; ``lastEventId`` is the last one
        returned, or ``afterEventId`` when none (paging on it never skips one)."""
        page_size = req.page_size or m.DEFAULT_PAGE_SIZE
        node_id = req.fleet_node_id or None
        records = await self._events.list_events(p.org_id, req.after_event_id, node_id, page_size)
        # An empty page costs one more lookup, to tell a quiet node from an unknown one.
        if not records and node_id is not None:
            if not await self._events.node_exists(p.org_id, node_id):
                raise NotFound(NODE_NOT_FOUND)
        last = records[-1].event_id if records else req.after_event_id
        return m.ListFleetNodeEventsResponse(
            events=tuple(event_of(record) for record in records), last_event_id=m.Int64(last)
        )

    async def summary(self, p: AdminPrincipal, _req: m.Empty) -> m.GetFleetSummaryResponse:
        now = self._clock()
        online_since = now - self._offline_after
        counts = await self._summary.counts(p.org_id, online_since)
        recent = await self._summary.recently_offline(
            p.org_id,
            now - datetime.timedelta(seconds=RECENTLY_OFFLINE_SECONDS),
            online_since,
            RECENTLY_OFFLINE_LIMIT,
        )
        return m.GetFleetSummaryResponse(
            awaiting_confirmation=m.Int64(counts.awaiting_confirmation),
            online=m.Int64(counts.online),
            offline=m.Int64(counts.offline),
            never_seen=m.Int64(counts.never_seen),
            stopped=m.Int64(counts.stopped),
            recently_offline=tuple(summary_of(record, online_since) for record in recent),
        )
