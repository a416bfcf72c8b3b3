"""Connectivity events and the summary through the real programs: ``fleetctl events --follow``
and ``fleetctl summary`` against a ``fleet-gateway serve`` process and a real daemon."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.e2e.actors import enroll, start_agent
from tests.e2e.conftest import Fleet
from tests.e2e.harness import program, wait_until


def test_fleetctl_follows_a_nodes_events_and_counts_it(shared_fleet: Fleet, tmp_path: Path) -> None:
    """``fleetctl events --node ID --follow --json`` prints the node's REGISTERED and
    CONFIRMED, then ONLINE once its daemon beats and REVOKED once it is revoked, each once;
    ``fleetctl summary --json`` counts it online meanwhile; Ctrl-C ends the follow with 0."""
    harness, operator = shared_fleet.harness, shared_fleet.operator
    state = tmp_path / "node"
    node_id = enroll(harness, operator, state, "events-follow")
    follow = harness.start(
        "events-follow",
        [program("fleetctl"), "events", "--node", str(node_id), "--follow", "--json"],
        operator.env,
    )

    def kinds() -> list[str]:
        lines = [line for line in follow.text().splitlines() if line.startswith("{")]
        return [json.loads(line)["kind"].removeprefix("FLEET_NODE_EVENT_KIND_") for line in lines]

    def shown(expected: list[str]) -> bool:
        assert follow.running(), follow.tail()
        return kinds() == expected

    wait_until(lambda: shown(["REGISTERED", "CONFIRMED"]), what="the enrollment events")
    agent = start_agent(harness, state, "events-follow")
    wait_until(lambda: shown(["REGISTERED", "CONFIRMED", "ONLINE"]), what="ONLINE")
    summary = json.loads(operator.ctl("summary", "--json").stdout)
    assert int(summary["online"]) >= 1
    assert {"awaitingConfirmation", "offline", "neverSeen", "stopped"} <= set(summary)

    operator.revoke(node_id)
    wait_until(
        lambda: shown(["REGISTERED", "CONFIRMED", "ONLINE", "REVOKED"]),
        what="REVOKED",
        detail=follow.tail,
    )
    agent.wait_exit(timeout=10)
    follow.signal(signal.SIGINT)
    assert follow.wait_exit(timeout=10) == 0, follow.tail()
    assert "Traceback" not in follow.text()
