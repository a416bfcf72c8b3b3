"""The daemon against a real gateway and PostgreSQL: heartbeats, SIGTERM, revoke, gateway crash."""

from __future__ import annotations

import signal

from tests.e2e.actors import enroll, now, session_token, start_agent, wait_online_since
from tests.e2e.conftest import Fleet
from tests.e2e.harness import wait_until

# SPEC 5.7 promises 1 s; the bound leaves room for a loaded CI machine.
SIGTERM_EXIT_SECONDS = 3.0
# Revoke -> next heartbeat (1 s) unauthenticated -> handshake refused -> exit 77.
REVOKE_EXIT_SECONDS = 5.0
# Nothing in flight but 1 s heartbeats: draining is quick.
GATEWAY_STOP_SECONDS = 5.0


def test_heartbeats_make_the_node_online_and_sigterm_exits_0(shared_fleet: Fleet) -> None:
    """A running node's heartbeats list it ONLINE with lastSeenAt set; SIGTERM stops it with 0."""
    state = shared_fleet.harness.path("node-a")
    node_id = enroll(shared_fleet.harness, shared_fleet.operator, state, "node-a")
    before = shared_fleet.operator.node(node_id)
    assert before["connectivity"] == "CONNECTIVITY_NEVER_SEEN"
    assert "lastSeenAt" not in before
    started = now()

    agent = start_agent(shared_fleet.harness, state, "node-a")
    node = wait_online_since(shared_fleet.operator, node_id, started, fleetctl=True)
    assert node["enrollmentStatus"] == "FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED"
    assert "clockSkewMs" in node

    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(timeout=SIGTERM_EXIT_SECONDS) == 0, agent.tail()


def test_revoked_node_exits_77(shared_fleet: Fleet) -> None:
    """``fleetctl revoke`` makes the running agent exit 77 within a few seconds."""
    state = shared_fleet.harness.path("node-r")
    node_id = enroll(shared_fleet.harness, shared_fleet.operator, state, "node-r")
    started = now()
    agent = start_agent(shared_fleet.harness, state, "node-r")
    wait_online_since(shared_fleet.operator, node_id, started)

    shared_fleet.operator.revoke(node_id)
    assert agent.wait_exit(timeout=REVOKE_EXIT_SECONDS) == 77, agent.tail()
    assert "enroll" in agent.text()  # it says what to do: re-enroll
    assert all(n["fleetNodeId"] != str(node_id) for n in shared_fleet.operator.nodes())


def test_agent_recovers_by_itself_when_the_gateway_is_killed_and_restarted(fleet: Fleet) -> None:
    """After a SIGKILL of the gateway and a restart on the same port, the same agent process
    heartbeats again (lastSeenAt advances past the restart) without ever exiting; a SIGTERM
    then stops the gateway with 0 and the agent still waits for it."""
    state = fleet.harness.path("node-k")
    node_id = enroll(fleet.harness, fleet.operator, state, "node-k")
    started = now()
    agent = start_agent(fleet.harness, state, "node-k")
    wait_online_since(fleet.operator, node_id, started)
    token = session_token(state)
    port = fleet.gateway.port

    fleet.gateway.kill()
    wait_until(
        lambda: "heartbeat failed" in agent.text(),
        what="the agent to notice the gateway is gone",
        detail=agent.tail,
    )
    fleet.gateway.start()
    assert fleet.gateway.port == port
    restarted = now()

    wait_online_since(fleet.operator, node_id, restarted, timeout=20, fleetctl=True)
    assert agent.running(), agent.tail()
    assert "heartbeat succeeded again" in agent.text()
    assert session_token(state) == token  # the session in PostgreSQL outlived the crash

    failures = agent.text().count("heartbeat failed")
    fleet.gateway.proc.signal(signal.SIGTERM)
    assert fleet.gateway.proc.wait_exit(timeout=GATEWAY_STOP_SECONDS) == 0
    wait_until(
        lambda: agent.text().count("heartbeat failed") > failures,
        what="a failed heartbeat after the gateway stopped",
        detail=agent.tail,
    )
    assert agent.running(), agent.tail()
