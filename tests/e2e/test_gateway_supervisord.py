"""N gateway replicas on one port under a real supervisord running the shipped
deploy/supervisord/fleet-gateway.conf (``numprocs=2``, ``serve --reuse-port``).

Only the sample's site-specific literals are substituted (program path, port, database,
user, log folder). Which replica a connection reaches is the kernel's choice
(SO_REUSEPORT hashes the connection's addresses), so the tests find, for each replica, a
keep-alive connection that it serves: the replica whose log grew by the answer's line.
"""

from __future__ import annotations

import getpass
import http.client
import json
import random
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.e2e.actors import Operator, bootstrap, enroll, session_token
from tests.e2e.harness import Harness, deployed_sample, free_port, program, wait_until
from tests.e2e.supervisord import Supervisord, running_supervisord

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "supervisord" / "fleet-gateway.conf"
REPLICAS = ("fleet-gateway:fleet-gateway-0", "fleet-gateway:fleet-gateway-1")
TELEMETRY = "/fleetnodegateway.v1.FleetNodeGatewayService/UploadTelemetry"
CONNECTIONS_TO_TRY = 64
REVOKED_WITHIN_SECONDS = 1.0


@attrs.frozen
class Replicas:
    supervisord: Supervisord
    port: int
    metrics_ports: tuple[int, ...]  # one per replica, in REPLICAS order
    logs: tuple[Path, ...]  # one per replica, in REPLICAS order
    operator: Operator

    def rpc_lines(self, index: int) -> list[dict[str, object]]:
        text = self.logs[index].read_text() if self.logs[index].exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("event") == "rpc"]


@pytest.fixture
def replicas(harness: Harness, database_url: str) -> Iterator[Replicas]:
    """The sample's two replicas, on a free port and a fresh bootstrapped database."""
    port = free_port()
    metrics_prefix = free_metrics_prefix()
    root = harness.path("supervisor-gateways")
    sample = deployed_sample(
        SAMPLE,
        {
            "/opt/fleetnode/bin/fleet-gateway": program("fleet-gateway"),
            "--port 8080": f"--port {port}",
            "--metrics-port 91%(process_num)02d": f"--metrics-port {metrics_prefix}%(process_num)d",
            # supervisord expands %(name)s in its values: a literal % is written %%.
            "postgresql://fleet@127.0.0.1/fleet": database_url.replace("%", "%%"),
            "user=fleet-gateway": f"user={getpass.getuser()}",
            "/var/log/fleet-gateway": str(root),
        },
    )
    logs = tuple(root / f"fleet-gateway-{n}.log" for n in range(len(REPLICAS)))
    harness.logs.extend(logs)
    token = bootstrap(harness, database_url)  # init-db first: serve refuses an older schema
    with running_supervisord(
        harness, root, {"fleet-gateway.conf": sample}, REPLICAS[0]
    ) as supervisord:
        for name in REPLICAS:
            supervisord.wait_state("RUNNING", name=name)
        for log in logs:
            wait_until(
                lambda log=log: log.exists() and f":{port}" in log.read_text(),  # type: ignore[misc]
                timeout=20,
                what=f"{log.name} to say it listens",
                detail=supervisord.tail,
            )
        operator = Operator(harness, f"http://127.0.0.1:{port}", token)
        metrics_ports = tuple(int(f"{metrics_prefix}{n}") for n in range(len(REPLICAS)))
        yield Replicas(supervisord, port, metrics_ports, logs, operator)


def free_metrics_prefix() -> int:
    """A number N such that ports N0 and N1 are free (the sample numbers each replica's
    metrics port by appending its process number)."""
    for _ in range(100):
        prefix = random.randrange(2000, 6500)
        if all(port_is_free(int(f"{prefix}{n}")) for n in range(len(REPLICAS))):
            return prefix
    raise AssertionError("no free pair of metrics ports found")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def telemetry_counted(metrics_port: int) -> float:
    """UploadTelemetry calls one replica answered, from its own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fleet_gateway_requests_total{") and f'{TELEMETRY[1:]}"' in line
    )


def telemetry(connection: http.client.HTTPConnection, token: str) -> int:
    """UploadTelemetry authenticates like a heartbeat (and spends no rate-limit token)."""
    connection.request(
        "POST",
        TELEMETRY,
        body=b"{}",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    response = connection.getresponse()
    response.read()
    return response.status


def connection_to_each(replicas: Replicas, token: str) -> list[http.client.HTTPConnection]:
    """A keep-alive connection served by each replica, in REPLICAS order."""
    found: dict[int, http.client.HTTPConnection] = {}
    for _ in range(CONNECTIONS_TO_TRY):
        connection = http.client.HTTPConnection("127.0.0.1", replicas.port, timeout=10)
        before = [len(replicas.rpc_lines(n)) for n in range(len(REPLICAS))]
        telemetry(connection, token)
        grown = wait_until(
            lambda before=before: [  # type: ignore[misc]
                n for n in range(len(REPLICAS)) if len(replicas.rpc_lines(n)) > before[n]
            ],
            timeout=5,
            what="a replica to log the call",
        )
        if grown[0] in found:
            connection.close()
        else:
            found[grown[0]] = connection
        if len(found) == len(REPLICAS):
            return [found[n] for n in range(len(REPLICAS))]
    raise AssertionError(f"{CONNECTIONS_TO_TRY} connections reached only replicas {sorted(found)}")


def test_both_replicas_serve_and_a_revoke_reaches_both_within_a_second(
    replicas: Replicas, harness: Harness
) -> None:
    """Both processes share the port and answer, each counting its own calls on its own
    metrics port; a node revoked through one is refused by both within a second (each had
    the session cached)."""
    state_dir = harness.path("node-r")
    node_id = enroll(harness, replicas.operator, state_dir, "node-r")
    session = session_token(state_dir)
    connections = connection_to_each(replicas, session)
    try:
        counted = [telemetry_counted(port) for port in replicas.metrics_ports]
        for connection in connections:
            assert telemetry(connection, session) == 501  # authenticated: unimplemented
        # Each replica's own metrics port counts the call that replica answered.
        assert [
            telemetry_counted(port) - before
            for port, before in zip(replicas.metrics_ports, counted, strict=True)
        ] == [1.0, 1.0]
        replicas.operator.revoke(node_id)
        for index, connection in enumerate(connections):
            wait_until(
                lambda connection=connection: telemetry(connection, session) == 401,  # type: ignore[misc]
                timeout=REVOKED_WITHIN_SECONDS,
                what=f"replica {index} to refuse the revoked node",
            )
    finally:
        for connection in connections:
            connection.close()


def test_supervisorctl_stop_drains_both_replicas(replicas: Replicas) -> None:
    """``supervisorctl stop fleet-gateway:*`` stops both, each draining and exiting 0."""
    assert sorted(replicas.supervisord.ctl("stop", "fleet-gateway:*").split()) == sorted(
        [f"{name}:" for name in REPLICAS] + ["stopped", "stopped"]
    )
    for name in REPLICAS:
        assert replicas.supervisord.status(name)[:2] == [name, "STOPPED"]
        short = name.split(":")[1]
        assert replicas.supervisord.log_lines(rf"stopped: {short} \(exit status 0\)")
    for log in replicas.logs:
        events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line]
        assert "stopping: draining in-flight requests" in events and events[-1] == "stopped"
