"""The shipped deploy/nginx/fleet-gateway.conf in a real nginx in front of two gateway replicas.

A minimal main config ``include``s the sample; only its listen address and port, the two
upstream ports and the certificate paths are substituted (each literal must occur
exactly once). The certificate comes from a throwaway CA (trustme) for 127.0.0.1 and
localhost; the node and fleetctl trust that CA with ``--ca-file``. nginx listens on
127.0.0.1 only (the sample's ``listen 443`` would take every interface).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
import trustme

from tests.e2e.actors import (
    LIST_NODES,
    Gateway,
    Operator,
    bootstrap,
    enroll,
    now,
    session_token,
    start_agent,
    wait_online_since,
)
from tests.e2e.harness import Harness, Process, clean_env, deployed_sample, free_port, wait_until

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "fleet-gateway.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TRUSTED = ("--trusted-proxies", "127.0.0.1/32")
HEARTBEATS = "fleet_gateway_heartbeats_received_total"
HEARTBEAT = "/fleetnodegateway.v1.FleetNodeGatewayService/UploadHeartbeat"
# SPEC 3.5: every replica rejects a revoked node's next call within 1 s of the revoke.
REVOKE_PROPAGATION_SECONDS = 1.0
FORGED = "203.0.113.9"  # TEST-NET-3: never a real peer here
MAIN_CONFIG = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
    include {root}/fleet-gateway.conf;
}}
"""


@attrs.frozen
class Proxied:
    harness: Harness
    database_url: str
    nginx: Process
    url: str
    ca_file: Path
    nginx_root: Path
    replicas: tuple[Gateway, Gateway]
    operator: Operator

    def client(self, local_address: str = "127.0.0.1") -> httpx.Client:
        """An HTTPS client trusting the test CA, connecting from ``local_address``."""
        verify = ssl.create_default_context(cafile=str(self.ca_file))
        return httpx.Client(
            transport=httpx.HTTPTransport(verify=verify, local_address=local_address),
            timeout=5,
        )


@pytest.fixture(scope="module")
def module_proxied(module_harness: Harness, module_database_url: str) -> Proxied:
    """nginx (from the sample) on a free loopback port, proxying to two replicas that trust it
    (shared by the module's tests: it takes seconds to set up)."""
    harness, database_url = module_harness, module_database_url
    replicas = (
        Gateway(harness, database_url, "replica-1", TRUSTED),
        Gateway(harness, database_url, "replica-2", TRUSTED),
    )
    token = bootstrap(harness, database_url, *replicas)

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    root = harness.path("nginx")
    for sub in ("logs", "temp"):
        (root / sub).mkdir(parents=True)
    ca_file, chain, key = root / "ca.pem", root / "fullchain.pem", root / "privkey.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key))
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(chain), append=True)
    for line in cert.private_key_pem.bytes().decode().splitlines():
        if not line.startswith("-----"):
            harness.secret(line, "TLS private key")

    port = free_port()
    sample = deployed_sample(
        SAMPLE,
        {
            "\n    listen 443 ": f"\n    listen 127.0.0.1:{port} ",  # not the comment's
            "127.0.0.1:8081": f"127.0.0.1:{replicas[0].port}",
            "127.0.0.1:8082": f"127.0.0.1:{replicas[1].port}",
            "/etc/ssl/fleet/fullchain.pem": str(chain),
            "/etc/ssl/fleet/privkey.pem": str(key),
        },
    )
    (root / "fleet-gateway.conf").write_text(sample)
    (root / "nginx.conf").write_text(MAIN_CONFIG.format(root=root))
    harness.logs += [root / "error.log", root / "access.log"]
    nginx = harness.start(
        "nginx",
        [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
        clean_env(),
    )
    url = f"https://127.0.0.1:{port}"
    proxied = Proxied(
        harness,
        database_url,
        nginx,
        url,
        ca_file,
        root,
        replicas,
        Operator(harness, url, token, ca_file),
    )

    def healthy() -> bool:
        assert nginx.running(), f"nginx exited\n{nginx.tail()}"
        try:
            with proxied.client() as client:
                return client.get(f"{url}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, what="nginx to proxy /healthz", detail=nginx.tail)
    return proxied


@pytest.fixture
def proxied(module_proxied: Proxied) -> Iterator[Proxied]:
    """The module's proxy; what the test starts is stopped after it, and logs are checked."""
    with module_proxied.harness.scope():
        yield module_proxied


def test_node_and_fleetctl_work_over_https_through_nginx_to_both_replicas(
    proxied: Proxied,
) -> None:
    """Through the sample, a node enrolls and heartbeats over HTTPS with --ca-file, fleetctl
    lists it with --ca-file, and the heartbeats reach both replicas."""
    state = proxied.harness.path("node-tls")
    node_id = enroll(proxied.harness, proxied.operator, state, "node-tls", proxied.ca_file)
    started = now()
    agent = start_agent(proxied.harness, state, "node-tls")

    node = wait_online_since(proxied.operator, node_id, started, fleetctl=True)
    assert node["enrollmentStatus"] == "FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED"
    wait_until(
        lambda: all(r.counter(HEARTBEATS) for r in proxied.replicas),
        what="heartbeats to reach both replicas",
        detail=agent.tail,
    )
    assert agent.running()


def test_a_revoke_through_nginx_reaches_every_replica_within_a_second(proxied: Proxied) -> None:
    """After ``fleetctl revoke`` returns, both replicas, each of which had the node's session
    cached, answer its session token ``unauthenticated`` within 1 s, and the agent exits 77."""
    name = proxied.harness.unique("node-rv")
    state = proxied.harness.path(name)
    node_id = enroll(proxied.harness, proxied.operator, state, name, proxied.ca_file)
    before = [r.counter(HEARTBEATS) for r in proxied.replicas]
    agent = start_agent(proxied.harness, state, name)
    wait_until(  # so both replicas hold the session in their caches
        lambda: all(
            r.counter(HEARTBEATS) > seen for r, seen in zip(proxied.replicas, before, strict=True)
        ),
        what="heartbeats to reach both replicas",
        detail=agent.tail,
    )
    token = session_token(state)

    proxied.operator.revoke(node_id)
    wait_until(
        lambda: all(_heartbeat_code(r, token) == "unauthenticated" for r in proxied.replicas),
        timeout=REVOKE_PROPAGATION_SECONDS,
        what="both replicas to refuse the revoked node's session",
    )
    assert agent.wait_exit(timeout=10) == 77, agent.tail()


def _heartbeat_code(replica: Gateway, token: str) -> str:
    """The Connect code a replica answers a heartbeat with this session token ("ok")."""
    response = httpx.post(
        f"{replica.url}{HEARTBEAT}",
        json={"sentAt": now().isoformat().replace("+00:00", "Z")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    return "ok" if response.status_code == 200 else str(response.json()["code"])


def test_heartbeats_go_on_through_the_other_replica_when_one_is_killed(proxied: Proxied) -> None:
    """With one replica killed, nginx sends every heartbeat to the other one (the sample
    retries an upstream it cannot connect to), and the agent keeps heartbeating."""
    name = proxied.harness.unique("node-fo")
    state = proxied.harness.path(name)
    node_id = enroll(proxied.harness, proxied.operator, state, name, proxied.ca_file)
    started = now()
    agent = start_agent(proxied.harness, state, name)
    wait_online_since(proxied.operator, node_id, started)
    survivor, victim = proxied.replicas

    victim.kill()
    try:
        killed, seen = now(), survivor.counter(HEARTBEATS)
        wait_until(
            lambda: survivor.counter(HEARTBEATS) >= seen + 3,
            what="three more heartbeats at the surviving replica",
            detail=agent.tail,
        )
        wait_online_since(proxied.operator, node_id, killed)
        assert agent.running(), agent.tail()
        # nginx did try the dead replica, and moved the call on to the live one.
        refused = "connect() failed (111: Connection refused) while connecting to upstream"
        errors = (proxied.nginx_root / "error.log").read_text()
        assert any(
            refused in line and f"127.0.0.1:{victim.port}/" in line for line in errors.splitlines()
        ), errors[-2000:]
    finally:
        victim.start()  # on its old port, for the module's other tests


def test_nginx_speaks_http2_and_does_not_expose_metrics(proxied: Proxied) -> None:
    """Clients get HTTP/2 from nginx, Connect calls included, and /metrics through nginx is
    404 while the replicas still serve it directly."""
    with proxied.client() as client:
        assert client.get(f"{proxied.url}/metrics").status_code == 404
    assert "fleet_gateway_requests_total" in proxied.replicas[0].metrics()
    # httpx would need the h2 package, not a dependency of the project: curl speaks HTTP/2.
    # Without curl this one check cannot be made (scripts/test does not install curl).
    if shutil.which("curl") is None:
        return
    assert _curl(proxied, f"{proxied.url}/healthz") == ("2", "200")
    # The admin token goes in a header file, not on a command line other users can see.
    headers = proxied.harness.path("curl-headers")
    headers.write_text(
        f"Authorization: Bearer {proxied.operator.token}\nContent-Type: application/json\n"
    )
    assert _curl(proxied, f"{proxied.url}{LIST_NODES}", "-H", f"@{headers}", "-d", "{}") == (
        "2",
        "200",
    )


def _curl(proxied: Proxied, url: str, *args: str) -> tuple[str, str]:
    """HTTP version and status of one ``curl --http2`` request that trusts the test CA."""
    written = subprocess.run(
        [
            "curl", "--http2", "-s", "--cacert", str(proxied.ca_file), "-o", "/dev/null",
            "-w", "%{http_version} %{http_code}", *args, url,
        ],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    version, status = written.split()
    return version, status


def test_replicas_take_the_client_address_from_nginx_and_only_from_trusted_peers(
    proxied: Proxied,
) -> None:
    """Behind nginx the gateway logs the client nginx saw, not a forged X-Forwarded-For; a
    replica that trusts no proxy, or a peer that is not a trusted proxy, gets the socket's."""
    untrusting = Gateway(proxied.harness, proxied.database_url, "replica-untrusting").start()
    marks = [replica.proc.size() for replica in proxied.replicas]
    forged = {"X-Forwarded-For": FORGED, "Authorization": f"Bearer {proxied.operator.token}"}

    # From 127.0.0.2 through nginx: nginx replaces the header with its peer, 127.0.0.2.
    with proxied.client(local_address="127.0.0.2") as client:
        assert client.post(f"{proxied.url}{LIST_NODES}", json={}, headers=forged).status_code == 200
    # Directly to a replica that trusts nobody, from 127.0.0.1.
    with proxied.client() as client:
        direct = client.post(f"{untrusting.url}{LIST_NODES}", json={}, headers=forged)
        assert direct.status_code == 200
    # Directly to a trusting replica from 127.0.0.3, which is not a trusted proxy.
    with proxied.client(local_address="127.0.0.3") as client:
        sneaky = client.post(f"{proxied.replicas[0].url}{LIST_NODES}", json={}, headers=forged)
        assert sneaky.status_code == 200

    replica_logs = "".join(
        r.proc.text(mark) for r, mark in zip(proxied.replicas, marks, strict=True)
    )
    assert _rpc_clients(replica_logs) == {"127.0.0.2", "127.0.0.3"}
    assert _rpc_clients(untrusting.proc.text()) == {"127.0.0.1"}
    for log in (*proxied.replicas, untrusting):
        assert FORGED not in log.proc.text()


def _rpc_clients(log: str) -> set[str]:
    """The ``client=`` of every RPC line a gateway logged."""
    return {
        field.removeprefix("client=")
        for line in log.splitlines()
        if " rpc " in line
        for field in line.split()
        if field.startswith("client=")
    }
