"""The fleet: ``nodes``, ``confirm``, ``revoke`` and ``summary``."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Iterable

import attrs

from fleetctl.context import Context
from fleetctl.output import api_json
from fleetctl.table import ABSENT, ago, label, printable, render
from fleetwire import messages as m
from fleetwire import procedures as p

HEADERS = ("ID", "NAME", "STATUS", "FINGERPRINT", "LAST SEEN", "CONNECTIVITY", "SKEW")
WIDE_HEADERS = ("AGENT VERSION", "HOSTNAME", "OS")


def _skew(skew_ms: int | None) -> str:
    if skew_ms is None:
        return ABSENT
    seconds = round(skew_ms / 1000, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{seconds:+.1f}s"


def _facts(facts: m.NodeFacts | None) -> tuple[str, ...]:
    if facts is None:
        return (ABSENT,) * len(WIDE_HEADERS)
    return tuple(
        printable(value) or ABSENT for value in (facts.agent_version, facts.hostname, facts.os)
    )


def node_table(nodes: Iterable[m.FleetNodeSummary], now: datetime.datetime, wide: bool) -> str:
    """The fleet table, one line per node; ``wide`` adds what the nodes say of themselves."""
    rows = [
        (
            str(node.fleet_node_id),
            printable(node.name),
            label(node.enrollment_status),
            node.identity_fingerprint,
            ago(node.last_seen_at, now),
            label(node.connectivity),
            _skew(node.clock_skew_ms),
            *(_facts(node.facts) if wide else ()),
        )
        for node in nodes
    ]
    return render(HEADERS + WIDE_HEADERS if wide else HEADERS, rows)


@attrs.frozen
class Nodes:
    connectivity: m.Connectivity = m.Connectivity.CONNECTIVITY_UNSPECIFIED
    json: bool = False
    wide: bool = False

    def run(self, ctx: Context) -> None:
        first = m.ListFleetNodesRequest(
            page_size=m.Int32(m.MAX_PAGE_SIZE), connectivity=self.connectivity
        )
        found = ctx.client.collect(p.LIST_FLEET_NODES, first, lambda page: page.fleet_nodes)
        if self.json:
            print(api_json(m.ListFleetNodesResponse(fleet_nodes=found)))
        else:
            print(node_table(found, ctx.clock.now(), self.wide))


@attrs.frozen
class Confirm:
    fleet_node_id: int

    def run(self, ctx: Context) -> None:
        request = m.ConfirmFleetNodeRequest(fleet_node_id=m.Int64(self.fleet_node_id))
        response = ctx.client.call(p.CONFIRM_FLEET_NODE, request)
        print(
            f"fleet node {self.fleet_node_id} confirmed; its api key, shown once "
            "(paste it at the agent's prompt):",
            file=sys.stderr,
        )
        print(response.api_key)


@attrs.frozen
class Revoke:
    fleet_node_id: int

    def run(self, ctx: Context) -> None:
        request = m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(self.fleet_node_id))
        ctx.client.call(p.REVOKE_FLEET_NODE, request)
        print(f"revoked fleet_node_id={self.fleet_node_id}")


def summary_text(summary: m.GetFleetSummaryResponse, now: datetime.datetime) -> str:
    """Counts first (confirmed nodes by connectivity, then those awaiting confirmation),
    then the nodes that went offline within the last hour, most recent first."""
    by_connectivity = {
        "online": summary.online or 0,
        "offline": summary.offline or 0,
        "never seen": summary.never_seen or 0,
        "stopped": summary.stopped or 0,
    }
    counts = [
        ("confirmed nodes", sum(by_connectivity.values())),
        *((f"  {name}", count) for name, count in by_connectivity.items()),
        ("awaiting confirmation", summary.awaiting_confirmation or 0),
    ]
    width = max(len(name) for name, _ in counts)
    digits = max(len(str(count)) for _, count in counts)
    lines = [f"{name.ljust(width)}  {str(count).rjust(digits)}" for name, count in counts]
    recent = summary.recently_offline
    lines.append("")
    if not recent:
        lines.append("no node went offline in the last hour")
        return "\n".join(lines)
    lines.append(f"offline in the last hour: {len(recent)}")
    rows = [
        (str(node.fleet_node_id), printable(node.name), ago(node.last_seen_at, now))
        for node in recent
    ]
    lines.append(render(("ID", "NAME", "LAST SEEN"), rows))
    return "\n".join(lines)


@attrs.frozen
class Summary:
    json: bool = False

    def run(self, ctx: Context) -> None:
        summary = ctx.client.call(p.GET_FLEET_SUMMARY, m.Empty())
        print(api_json(summary) if self.json else summary_text(summary, ctx.clock.now()))
