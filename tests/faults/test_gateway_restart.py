"""Fault: the gateway is killed (SIGKILL) under 200 running agents and restarted later.

200 real ``fleetnode run`` processes would not fit on two cores, so one Trio process (this
test) runs 200 agents, each with its own state directory and its own httpx client, each
started as ``fleetnode run`` starts it (``agent.daemon.run_node`` on its locked state, without
a signal watcher: the signals belong to the process). A recording transport
notes each acknowledged heartbeat, so the test sees when each agent is back after the
restart: jitter and backoff must spread them (no thundering herd).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from agent import logs
from agent.state import State
from agent.statedir import StateStore
from fleetwire import procedures as p
from tests.e2e.actors import Gateway, bootstrap
from tests.e2e.harness import Harness
from tests.faults.agent_support import CANCELLED_BODY_WARNING, finalize_garbage, run_agent
from tests.faults.fleet_http import FLEET_AUTH_LIMITS, enroll_nodes

pytestmark = [
    pytest.mark.faults,
    pytest.mark.trio,
    pytest.mark.filterwarnings(CANCELLED_BODY_WARNING),
]

AGENTS = 200
DOWN_SECONDS = 10.0
START_LIMIT_SECONDS = 90.0
RECOVERY_LIMIT_SECONDS = 150.0
STEADY_SECONDS = 6.0
BUCKET_SECONDS = 1.0
# A herd would bring most of the fleet back within the same second. Spread by jitter and
# backoff, the fleet comes back at the rate its retries fall due: 20-40 a second at the
# busiest, then fewer (seen over several runs).
HERD_SHARE = 0.3

Record = Callable[[int, str], None]


class RecordingTransport(httpx.AsyncHTTPTransport):
    """A real HTTP transport that reports each 200 answer (agent index, procedure)."""

    def __init__(self, index: int, record: Record) -> None:
        super().__init__()
        self._index = index
        self._record = record

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if response.status_code == 200:
            self._record(self._index, request.url.path)
        return response


@attrs.frozen
class Fleet:
    harness: Harness
    gateway: Gateway
    stores: list[StateStore]


@pytest.fixture
def fleet(tmp_path: Path, database_url: str) -> Iterator[Fleet]:
    """A gateway (5 s heartbeats, debounce 0) with 200 confirmed nodes, each with a state
    directory holding its identity and api key but no session; the agents' log lines go
    to a file; no secret may appear in any log."""
    harness = Harness(tmp_path)
    agent_log = harness.log_path("agents")
    agent_stream = agent_log.open("a")
    handler = logs.make_handler(agent_stream, "text")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        extra = [*FLEET_AUTH_LIMITS, "--heartbeat-interval", "5s", "--last-seen-debounce", "0"]
        gateway = Gateway(harness, database_url, "gateway", extra=extra)
        token = bootstrap(harness, database_url, gateway)
        nodes = enroll_nodes(harness, gateway.url, token, AGENTS, "agent", with_session=False)
        stores = []
        for node in nodes:
            store = StateStore(harness.watch_state(tmp_path / "agents" / node.name))
            store.save(
                State(
                    server_url=gateway.url,
                    fleet_node_id=node.fleet_node_id,
                    name=node.name,
                    identity_fingerprint=node.identity.fingerprint,
                    identity_public_key=node.identity.public_key.hex(),
                    identity_private_key=node.identity.private_key_hex,
                    api_key=node.api_key,
                )
            )
            stores.append(store)
        yield Fleet(harness, gateway, stores)
    finally:
        root.removeHandler(handler)
        handler.close()
        agent_stream.close()
        harness.stop_all()
    leaked = harness.leaked_secrets()
    assert not leaked, "secrets in logs:\n" + "\n".join(leaked)


def histogram(delays: list[float]) -> str:
    buckets = collections.Counter(int(delay // BUCKET_SECONDS) for delay in delays)
    lines = []
    for bucket in range(max(buckets) + 1):
        count = buckets.get(bucket, 0)
        low = bucket * BUCKET_SECONDS
        lines.append(f"  {low:5.1f}-{low + BUCKET_SECONDS:5.1f} s {count:4d} {'#' * count}")
    return "\n".join(lines)


async def test_agents_reconnect_spread_out_after_a_gateway_restart(fleet: Fleet) -> None:
    """After the gateway is killed and restarted 10 s later, all 200 agents heartbeat
    again without any restart of their own and without handshaking again, and their first
    heartbeats after the restart are spread over time, not a herd."""
    beats: dict[int, list[float]] = collections.defaultdict(list)
    handshakes: list[float] = []

    def record(index: int, path: str) -> None:
        if path == p.UPLOAD_HEARTBEAT.path:
            beats[index].append(trio.current_time())
        elif path == p.COMPLETE_AUTH_HANDSHAKE.path:
            handshakes.append(trio.current_time())

    begun = trio.current_time()
    async with trio.open_nursery() as nursery:
        for index, store in enumerate(fleet.stores):
            await nursery.start(run_agent, store, RecordingTransport(index, record))
        with trio.fail_after(START_LIMIT_SECONDS):
            while len(beats) < AGENTS:  # noqa: ASYNC110 - watching real processes
                await trio.sleep(0.2)
        started = trio.current_time()
        await trio.sleep(STEADY_SECONDS)

        await trio.to_thread.run_sync(fleet.gateway.kill)
        killed = trio.current_time()
        await trio.sleep(DOWN_SECONDS)
        # Delays count from the relaunch: the gateway's own start-up is part of them.
        relaunched = trio.current_time()
        await trio.to_thread.run_sync(fleet.gateway.start)  # same port
        listening = trio.current_time()

        def back() -> dict[int, float]:
            return {
                index: min(at for at in times if at >= relaunched)
                for index, times in beats.items()
                if times[-1] >= relaunched
            }

        with trio.fail_after(RECOVERY_LIMIT_SECONDS):
            while len(back()) < AGENTS:  # noqa: ASYNC110 - watching real processes
                await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    await finalize_garbage()

    delays = sorted(at - relaunched for at in back().values())
    during = sum(1 for times in beats.values() for at in times if killed <= at < relaunched)
    counts = collections.Counter(int(delay // BUCKET_SECONDS) for delay in delays)
    print(
        f"\n{AGENTS} agents up {started - begun:.1f} s after start; gateway SIGKILLed, "
        f"relaunched {relaunched - killed:.1f} s later, its 'listening' line seen after "
        f"{listening - relaunched:.1f} s; first acknowledged heartbeat per agent after the "
        f"relaunch: min {delays[0]:.2f} s, median {delays[len(delays) // 2]:.2f} s, "
        f"p90 {delays[int(len(delays) * 0.9)]:.2f} s, max {delays[-1]:.2f} s; "
        f"handshakes after it: {sum(1 for at in handshakes if at >= relaunched)}\n"
        + histogram(delays)
    )
    assert during == 0
    assert not [at for at in handshakes if at >= relaunched], "sessions should survive"
    assert max(counts.values()) <= HERD_SHARE * AGENTS, "a herd: " + histogram(delays)
    assert delays[int(len(delays) * 0.9)] - delays[int(len(delays) * 0.1)] >= 5.0
    for store in fleet.stores:
        assert store.load_enrolled().session is not None
