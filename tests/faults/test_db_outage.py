"""Fault: PostgreSQL stops under load and starts again; nothing restarts but PostgreSQL.

A real ``fleet-gateway serve`` (debounce 0: every heartbeat writes) on a private cluster,
simulated nodes heartbeating over HTTP twice a second, and one real ``fleetnode run``. A
trigger (installed by the test, not part of schema.sql) logs every committed write of
``last_seen_at``, so each 200 can be matched with the write that made it durable.

``FLEET_FAULT_OUTAGE_SECONDS`` sets the outage (default 10 s in CI; the README's figures
come from a 30 s run).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import psycopg2
import pytest
import trio

from fleetwire import procedures as p
from gateway.dev.pgcluster import Cluster, find_bindir, make_cluster_root
from tests.e2e.actors import Gateway, Operator, bootstrap, enroll, start_agent
from tests.e2e.harness import Harness
from tests.faults.agent_support import CANCELLED_BODY_WARNING, finalize_garbage
from tests.faults.fleet_http import (
    FLEET_AUTH_LIMITS,
    SimNode,
    enroll_nodes,
    utc_now_text,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.trio,
    pytest.mark.filterwarnings(CANCELLED_BODY_WARNING),
]

OUTAGE_SECONDS = float(os.environ.get("FLEET_FAULT_OUTAGE_SECONDS", "10"))
SIM_NODES = 30
BEAT_EVERY_SECONDS = 0.5  # per simulated node: 60 heartbeats/s in all, under the 4/s limit
STEADY_SECONDS = 5.0
RECOVERY_LIMIT_SECONDS = 20.0
AUDIT = """
CREATE TABLE fault_last_seen_log (node_id bigint NOT NULL, last_seen_at timestamptz NOT NULL);
CREATE FUNCTION fault_log_last_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fault_last_seen_log VALUES (NEW.id, NEW.last_seen_at);
    RETURN NEW;
END $$;
CREATE TRIGGER fault_log_last_seen AFTER UPDATE OF last_seen_at ON fleet_nodes
    FOR EACH ROW EXECUTE FUNCTION fault_log_last_seen();
"""


def sql(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@attrs.frozen
class Beat:
    node_id: int
    sent: float  # trio.current_time() when sent
    answered: float
    status: int
    code: str = ""
    received_at: datetime.datetime | None = None
    retry_after: str | None = None
    message: str = ""  # the error's message, checked for secrets


@attrs.frozen
class Probe:
    at: float
    status: int
    retry_after: str | None


@attrs.define
class Timeline:
    stop_begun: float = float("inf")
    stopped: float = float("inf")
    start_begun: float = float("inf")
    started: float = float("inf")


@attrs.frozen
class Outage:
    harness: Harness
    cluster: Cluster
    url: str
    gateway: Gateway
    operator: Operator
    nodes: list[SimNode]
    agent_node_id: int
    agent_state: Path


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    """A private cluster, a gateway on it with the audit trigger, 30 simulated nodes with
    sessions and one enrolled real agent (not yet running); secrets checked at the end."""
    cluster = Cluster(root=make_cluster_root(), bindir=find_bindir())
    harness = Harness(tmp_path)
    try:
        cluster.init()
        cluster.start()
        url = cluster.url()
        # Debounce 0: every heartbeat writes, so every 200 has a write of its own.
        extra = [*FLEET_AUTH_LIMITS, "--last-seen-debounce", "0", "--log-level", "debug"]
        gateway = Gateway(harness, url, "gateway", extra=extra)
        token = bootstrap(harness, url, gateway)
        sql(url, AUDIT)
        operator = Operator(harness, gateway.url, token)
        nodes = enroll_nodes(harness, gateway.url, token, SIM_NODES, "sim", with_session=True)
        state = harness.watch_state(tmp_path / "agent-state")
        node_id = enroll(harness, operator, state, "real-agent")
        yield Outage(harness, cluster, url, gateway, operator, nodes, node_id, state)
    finally:
        harness.stop_all()
        if cluster.log_file.exists():  # PostgreSQL's log joins the ones scanned for secrets
            harness.log_path("postgres").write_bytes(cluster.log_file.read_bytes())
        cluster.destroy()
    leaked = harness.leaked_secrets()
    assert not leaked, "secrets in logs:\n" + "\n".join(leaked)


async def beat_forever(http: httpx.AsyncClient, node: SimNode, beats: list[Beat]) -> None:
    while True:
        sent = trio.current_time()
        try:
            response = await http.post(
                p.UPLOAD_HEARTBEAT.path,
                json={"sentAt": utc_now_text()},
                headers={"Authorization": f"Bearer {node.session_token}"},
            )
        except httpx.TransportError:
            beats.append(Beat(node.fleet_node_id, sent, trio.current_time(), 0, "transport"))
        else:
            body = response.json()
            received = body.get("receivedAt")
            beats.append(
                Beat(
                    node.fleet_node_id,
                    sent,
                    trio.current_time(),
                    response.status_code,
                    body.get("code", ""),
                    datetime.datetime.fromisoformat(received) if received else None,
                    response.headers.get("Retry-After"),
                    body.get("message", ""),
                )
            )
        await trio.sleep_until(sent + BEAT_EVERY_SECONDS)


async def probe_forever(http: httpx.AsyncClient, probes: list[Probe]) -> None:
    while True:
        response = await http.get("/readyz")
        probes.append(
            Probe(trio.current_time(), response.status_code, response.headers.get("Retry-After"))
        )
        await trio.sleep(0.25)


def agent_last_seen(outage: Outage) -> datetime.datetime | None:
    rows = sql(
        outage.url, "SELECT last_seen_at FROM fleet_nodes WHERE id = %s", (outage.agent_node_id,)
    )
    value = rows[0][0]
    assert value is None or isinstance(value, datetime.datetime)
    return value


async def test_postgresql_outage_under_load(outage: Outage) -> None:
    """While PostgreSQL is down the gateway answers heartbeats `unavailable` with
    Retry-After and /readyz 503, acknowledges no heartbeat it has not durably written, and
    everything (gateway, simulated nodes, the real agent) recovers without a restart."""
    agent = start_agent(outage.harness, outage.agent_state, "real-agent")
    gateway_pid = outage.gateway.proc.pid
    beats: list[Beat] = []
    probes: list[Probe] = []
    times = Timeline()
    recovered_at: dict[int, float] = {}
    limits = httpx.Limits(max_connections=SIM_NODES + 5)
    async with (
        httpx.AsyncClient(base_url=outage.gateway.url, timeout=30, limits=limits) as http,
        trio.open_nursery() as nursery,
    ):
        for node in outage.nodes:
            nursery.start_soon(beat_forever, http, node, beats)
        nursery.start_soon(probe_forever, http, probes)
        await trio.sleep(STEADY_SECONDS)

        times.stop_begun = trio.current_time()
        await trio.to_thread.run_sync(outage.cluster.stop)
        times.stopped = trio.current_time()
        await trio.sleep(OUTAGE_SECONDS)
        times.start_begun = trio.current_time()
        await trio.to_thread.run_sync(outage.cluster.start)
        times.started = trio.current_time()
        up_since = datetime.datetime.now(datetime.UTC)

        with trio.fail_after(RECOVERY_LIMIT_SECONDS):
            while len(recovered_at) < len(outage.nodes) or not _agent_back(outage, up_since):
                for beat in beats:
                    if beat.status == 200 and beat.sent >= times.started:
                        recovered_at.setdefault(beat.node_id, beat.answered)
                await trio.sleep(0.25)
        await trio.sleep(2.0)  # a little steady state after the recovery
        nursery.cancel_scope.cancel()
    await finalize_garbage()

    assert outage.gateway.proc.running() and outage.gateway.proc.pid == gateway_pid
    assert agent.running(), agent.tail()

    # 1. While PostgreSQL was down: no 200, every heartbeat `unavailable` with Retry-After.
    during = [b for b in beats if b.sent >= times.stopped and b.answered <= times.start_begun]
    assert during, "no heartbeat was sent during the outage"
    assert not [b for b in during if b.status == 200], (
        "a heartbeat was acknowledged without PostgreSQL"
    )
    assert {(b.status, b.code) for b in during} == {(503, "unavailable")}
    assert all(b.retry_after and float(b.retry_after) > 0 for b in during)
    probes_down = [q for q in probes if times.stopped <= q.at <= times.start_begun]
    assert probes_down and all(q.status == 503 and q.retry_after for q in probes_down)
    assert probes[-1].status == 200

    # 2. Every 200 of the whole run matches a committed write of exactly its receivedAt.
    logged = {
        (int(node_id), seen)  # type: ignore[call-overload]
        for node_id, seen in sql(
            outage.url, "SELECT node_id, last_seen_at FROM fault_last_seen_log"
        )
    }
    acknowledged = [b for b in beats if b.status == 200]
    unbacked = [b for b in acknowledged if (b.node_id, b.received_at) not in logged]
    assert not unbacked, f"{len(unbacked)} heartbeats acknowledged without a committed write"

    # 3. The real agent rode it out: failures logged, then heartbeats again, same process.
    log = agent.text()
    assert "heartbeat failed" in log and "heartbeat succeeded again" in log, agent.tail()
    agent_failures = log.count("heartbeat failed")
    [(agent_back,)] = sql(
        outage.url,
        "SELECT min(last_seen_at) FROM fault_last_seen_log"
        " WHERE node_id = %s AND last_seen_at > %s",
        (outage.agent_node_id, up_since),
    )
    assert isinstance(agent_back, datetime.datetime)

    # 4. No error message the nodes saw, no gateway log line holds a secret or a traceback.
    messages = {b.message for b in beats}
    assert not [
        what for value, what in outage.harness.secrets.items() for text in messages if value in text
    ]
    assert "Traceback" not in outage.gateway.proc.text()

    recovery = sorted(at - times.started for at in recovered_at.values())
    outcomes: dict[str, int] = {}
    for b in beats:
        key = f"{b.status} {b.code}".strip()
        outcomes[key] = outcomes.get(key, 0) + 1
    print(
        f"\nPostgreSQL down {times.start_begun - times.stopped:.1f} s "
        f"(stop took {times.stopped - times.stop_begun:.1f} s, "
        f"start {times.started - times.start_begun:.1f} s); "
        f"{len(beats)} heartbeats from {SIM_NODES} simulated nodes: {outcomes}; "
        f"{len(during)} sent while down, 0 acknowledged, each answered 503 within "
        f"{max(b.answered - b.sent for b in during) * 1000:.0f} ms; "
        f"{len(acknowledged)} acknowledged, "
        f"all {len(acknowledged)} matched to a committed write; /readyz 503 on "
        f"{len(probes_down)} probes while down; every node's first 200 after the start "
        f"within {recovery[-1]:.2f} s (median {recovery[len(recovery) // 2]:.2f} s); "
        f"real agent (1 s interval): {agent_failures} failed heartbeats logged, first "
        f"heartbeat {(agent_back - up_since).total_seconds():.1f} s after the start, same pid"
    )


def _agent_back(outage: Outage, since: datetime.datetime) -> bool:
    seen = agent_last_seen(outage)
    return seen is not None and seen > since
