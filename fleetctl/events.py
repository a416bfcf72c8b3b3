"""``events``: the fleet's connectivity events, oldest first, optionally followed (SPEC 4.9, 7).

One line per event::

    <occurredAt, RFC 3339 UTC>  <eventId> node=<fleetNodeId> <KIND>
    2026-11-27T10:04:31Z  1207 node=42 OFFLINE

With ``--json`` one JSON object per line (the event in the API's JSON form), flushed at once,
so ``fleetctl events --follow --json | jq`` streams.
"""

from __future__ import annotations

import sys

import attrs

from fleetctl.context import Context
from fleetctl.errors import Unreachable, describe, is_transient
from fleetctl.output import api_json
from fleetwire import messages as m
from fleetwire import procedures as p
from fleetwire import scalars
from fleetwire.codes import ConnectError
from fleetwire.durations import format_duration

LINE_FORMAT = "<occurredAt RFC3339>  <eventId> node=<fleetNodeId> <KIND>"


def event_line(event: m.FleetNodeEvent) -> str:
    occurred = scalars.format_timestamp(event.occurred_at) if event.occurred_at else "-"
    kind = event.kind.name.removeprefix("FLEET_NODE_EVENT_KIND_")
    return f"{occurred}  {event.event_id} node={event.fleet_node_id} {kind}"


def _next_page(
    request: m.ListFleetNodeEventsRequest, response: m.ListFleetNodeEventsResponse
) -> m.ListFleetNodeEventsRequest | None:
    """Page on ``lastEventId`` until a page comes back empty (SPEC 2.2)."""
    if not response.events:
        return None
    last = response.last_event_id
    return attrs.evolve(
        request, after_event_id=response.events[-1].event_id if last is None else last
    )


@attrs.frozen
class Events:
    fleet_node_id: int = 0  # 0: every node
    after_event_id: int = 0
    follow: bool = False
    json: bool = False

    def run(self, ctx: Context) -> None:
        try:
            self._print_from(ctx, self.after_event_id)
        except KeyboardInterrupt:
            if not self.follow:
                raise
            # Ctrl-C is how a follow ends: exit 0, quietly.

    def _print_from(self, ctx: Context, cursor: int) -> None:
        """Print every event after ``cursor`` as its page arrives; with --follow, poll for
        more forever. Each event is printed once: after a failure the next poll resumes
        after the last event shown."""
        while True:
            wait = ctx.clock.follow_interval_seconds
            try:
                for page in ctx.client.pages(
                    p.LIST_FLEET_NODE_EVENTS, self._request(cursor), _next_page
                ):
                    for event in page.events:
                        print(api_json(event, indent=None) if self.json else event_line(event))
                        cursor = max(cursor, event.event_id)
                    sys.stdout.flush()
            except (Unreachable, ConnectError) as exc:
                if not (self.follow and is_transient(exc)):
                    raise
                retry_after = exc.retry_after_seconds if isinstance(exc, ConnectError) else None
                wait = max(wait, retry_after or 0.0)
                # Reported, not fatal: a gateway restart must not end an operator's watch.
                print(
                    f"fleetctl: {describe(exc)} (retrying in {format_duration(wait)})",
                    file=sys.stderr,
                    flush=True,
                )
            if not self.follow:
                return
            ctx.clock.sleep(wait)

    def _request(self, cursor: int) -> m.ListFleetNodeEventsRequest:
        return m.ListFleetNodeEventsRequest(
            after_event_id=m.Int64(cursor),
            fleet_node_id=m.Int64(self.fleet_node_id),
            page_size=m.Int32(m.MAX_PAGE_SIZE),
        )
