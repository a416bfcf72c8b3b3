"""The actors of the e2e tests, each a real program: the gateway, the operator (fleetctl)
and the node (fleetnode enroll / run), driven the way an operator drives them.

Short intervals everywhere: the gateway asks for 5 s heartbeats, writes every heartbeat
(debounce 0) and calls a node offline after 30 s; agents run with a 1 s interval.
"""

from __future__ import annotations

import datetime
import json
import re
import signal
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import Harness, Process, clean_env, program, wait_until

GATEWAY_TIMINGS = (
    "--heartbeat-interval", "5s",
    "--last-seen-debounce", "0",
    "--offline-after", "30s",
)  # fmt: skip
AGENT_INTERVAL = "1s"
ORG = "e2e"
LIST_NODES = "/fleetnodeadmin.v1.FleetNodeAdminService/ListFleetNodes"
HANDSHAKE = "fleetnodegateway.v1.FleetNodeGatewayService/CompleteAuthHandshake"
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")
_REGISTERED = re.compile(r"Registered as fleet node (\d+) with fingerprint ([0-9a-f]{16})")
START_SECONDS = 20.0


def bootstrap(harness: Harness, database_url: str, *replicas: Gateway) -> str:
    """``init-db``, then ``create-org`` and ``create-admin-token`` while the ``replicas``
    start serving (an operator's order, overlapped to save seconds); the admin token
    (now in the secret ledger). The replicas listen when this returns."""
    cli = [program("fleet-gateway"), "--database-url", database_url]
    env = clean_env()
    harness.run([*cli, "init-db"], env)
    for replica in replicas:
        replica.launch()
    harness.run([*cli, "create-org", ORG], env)
    token = harness.run([*cli, "create-admin-token", "--org", ORG, "--label", "e2e"], env).stdout
    for replica in replicas:
        replica.wait_listening()
    return harness.secret(token, "admin token")


class Gateway:
    """One ``fleet-gateway serve`` replica; it can be killed and started again on its port."""

    def __init__(
        self, harness: Harness, database_url: str, name: str, extra: Sequence[str] = ()
    ) -> None:
        self.harness = harness
        self.database_url = database_url
        self.name = name
        self.extra = tuple(extra)
        self.process: Process | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> Process:
        assert self.process is not None, f"{self.name} was never started"
        return self.process

    def start(self) -> Gateway:
        """Serve and wait until it listens."""
        return self.launch().wait_listening()

    def launch(self) -> Gateway:
        """Start serving on the port of the previous run (port 0, the kernel's pick, the
        first time); :meth:`wait_listening` waits for it."""
        argv = [
            program("fleet-gateway"),
            "--database-url", self.database_url,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            *GATEWAY_TIMINGS,
            *self.extra,
            "serve",
        ]  # fmt: skip
        self.process = self.harness.start(self.name, argv, clean_env())
        return self

    def wait_listening(self) -> Gateway:
        """Wait for the "listening on http://127.0.0.1:PORT" line; learn the port from it."""
        process = self.proc

        def listening() -> re.Match[str] | None:
            found = _LISTENING.search(process.text())
            if found is None and not process.running():
                raise AssertionError(f"{self.name} exited before listening\n{process.tail()}")
            return found

        found = wait_until(
            listening, timeout=START_SECONDS, what=f"{self.name} to listen", detail=process.tail
        )
        assert self.port in (0, int(found.group(2)))
        self.port = int(found.group(2))
        return self

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, like a crashed host."""
        self.proc.signal(signal.SIGKILL)
        assert self.proc.wait_exit(timeout=5) == -signal.SIGKILL

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def counter(self, name: str, **labels: str) -> float:
        """A counter's value from /metrics (0 when the series does not exist yet)."""
        wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        series = f"{name}{{{wanted}}}" if labels else name
        for line in self.metrics().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    def handshakes(self) -> float:
        return self.counter("fleet_gateway_requests_total", code="ok", procedure=HANDSHAKE)


class Operator:
    """``fleetctl`` with the admin token in its environment (never as a flag)."""

    def __init__(
        self, harness: Harness, server_url: str, token: str, ca_file: Path | None = None
    ) -> None:
        self.harness = harness
        self.server_url = server_url
        self.env = clean_env(FLEET_SERVER_URL=server_url, FLEET_ADMIN_TOKEN=token)
        self.token = token
        self.ca_file = ca_file
        self.tls = ["--ca-file", str(ca_file)] if ca_file else []

    def ctl(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.harness.run([program("fleetctl"), *self.tls, *args], self.env, ok=ok)

    def create_code(self) -> str:
        return self.harness.secret(self.ctl("create-code", "--ttl", "10m").stdout, "enroll code")

    def confirm(self, node_id: int) -> str:
        return self.harness.secret(self.ctl("confirm", str(node_id)).stdout, "api key")

    def revoke(self, node_id: int) -> None:
        self.ctl("revoke", str(node_id))

    def nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(self.ctl("nodes", "--json").stdout).get("fleetNodes", []))

    def node(self, node_id: int) -> dict[str, Any]:
        """The node as ``fleetctl nodes --json`` lists it."""
        return _only(self.nodes(), node_id)

    def peek(self, node_id: int) -> dict[str, Any]:
        """The node as ListFleetNodes returns it, called directly: the cheap way to poll
        (a fleetctl process per poll would cost more than the wait itself)."""
        verify = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True
        response = httpx.post(
            f"{self.server_url}{LIST_NODES}",
            json={},
            headers={"Authorization": f"Bearer {self.token}"},
            verify=verify,
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return _only(response.json().get("fleetNodes", []), node_id)


def _only(nodes: list[dict[str, Any]], node_id: int) -> dict[str, Any]:
    found = [n for n in nodes if n["fleetNodeId"] == str(node_id)]
    assert found, f"fleet node {node_id} is not listed"
    return found[0]


def last_seen(node: dict[str, Any]) -> datetime.datetime | None:
    text = node.get("lastSeenAt")
    return datetime.datetime.fromisoformat(text) if text else None


def online_since(node: dict[str, Any], since: datetime.datetime) -> bool:
    """Whether the listed node is ONLINE from a heartbeat the gateway got after ``since``."""
    seen = last_seen(node)
    return seen is not None and seen > since and node.get("connectivity") == "CONNECTIVITY_ONLINE"


def wait_online_since(
    operator: Operator,
    node_id: int,
    since: datetime.datetime,
    timeout: float = 10.0,
    *,
    fleetctl: bool = False,
) -> dict[str, Any]:
    """Wait for a heartbeat after ``since``; the node as listed then (by ``fleetctl nodes
    --json`` when ``fleetctl``, which must agree)."""

    def heartbeat_seen() -> dict[str, Any] | None:
        node = operator.peek(node_id)
        return node if online_since(node, since) else None

    node = wait_until(
        heartbeat_seen,
        timeout=timeout,
        what=f"a heartbeat of fleet node {node_id} after {since:%H:%M:%S.%f}",
    )
    if fleetctl:
        node = operator.node(node_id)
        assert online_since(node, since), node
    return node


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def enroll(
    harness: Harness,
    operator: Operator,
    state_dir: Path,
    name: str,
    ca_file: Path | None = None,
) -> int:
    """``fleetnode enroll`` with the code and then the api key piped into its stdin, the
    node confirmed by ``fleetctl confirm`` in between; its fleet node id."""
    code = operator.create_code()
    harness.watch_state(state_dir)
    argv = [
        program("fleetnode"), "--state-dir", str(state_dir),
        "enroll", "--server-url", operator.server_url, "--name", name,
        *(["--ca-file", str(ca_file)] if ca_file else []),
    ]  # fmt: skip
    process = harness.start(f"enroll-{name}", argv, clean_env(), stdin=subprocess.PIPE)
    stdin = process.popen.stdin
    assert stdin is not None
    try:
        stdin.write(f"{code}\n".encode())
        stdin.flush()

        def registered() -> re.Match[str] | None:
            found = _REGISTERED.search(process.text())
            if found is None and not process.running():
                raise AssertionError(f"enroll exited before registering\n{process.tail()}")
            return found

        found = wait_until(
            registered, timeout=START_SECONDS, what=f"{name} to register", detail=process.tail
        )
        node_id = int(found.group(1))
        # The operator compares the printed fingerprint with the listing before confirming.
        assert operator.peek(node_id)["identityFingerprint"] == found.group(2)
        api_key = operator.confirm(node_id)
        stdin.write(f"{api_key}\n".encode())
        stdin.flush()
    finally:
        stdin.close()
    assert process.wait_exit(timeout=START_SECONDS) == 0, process.tail()
    assert f"enrolled fleet_node_id={node_id} " in process.text()
    return node_id


def start_agent(harness: Harness, state_dir: Path, name: str, log_level: str = "info") -> Process:
    """``fleetnode run`` with a 1 s heartbeat interval."""
    argv = [
        program("fleetnode"), "--state-dir", str(state_dir), "--log-level", log_level,
        "run", "--heartbeat-interval", AGENT_INTERVAL,
    ]  # fmt: skip
    return harness.start(f"run-{name}", argv, clean_env())


def session_token(state_dir: Path) -> str:
    token = json.loads((state_dir / "state.json").read_text()).get("session_token", "")
    assert token, f"no session in {state_dir}"
    return str(token)
