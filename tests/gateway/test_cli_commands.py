"""fleet-gateway's commands as real processes: init-db, create-org, create-admin-token, serve."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

TOKEN = re.compile(r"fleetadm_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_env(), **(env or {})},
    )


def test_init_db_is_idempotent(database_url: str) -> None:
    """init-db succeeds on a fresh database and again on the same one."""
    for _ in range(2):
        done = gateway("init-db", "--database-url", database_url)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr


def test_create_org_prints_the_same_id_twice(database_url: str) -> None:
    """create-org prints the org id on stdout and is idempotent on the name."""
    first = gateway("create-org", "acme", env={"FLEET_DATABASE_URL": database_url})
    second = gateway("create-org", "acme", "--database-url", database_url)
    other = gateway("create-org", "globex", "--database-url", database_url)
    assert first.returncode == second.returncode == other.returncode == 0, first.stderr
    assert first.stdout.strip().isdigit()
    assert first.stdout == second.stdout
    assert other.stdout != first.stdout


def test_create_admin_token_prints_a_token_once(database_url: str) -> None:
    """create-admin-token prints one new token (fleetadm_ + 8 hex + _ + 43 base64url)."""
    assert gateway("create-org", "acme", "--database-url", database_url).returncode == 0
    tokens = []
    for role in ("admin", "viewer"):
        done = gateway(
            "create-admin-token", "--org", "acme", "--role", role, "--label", "ci",
            "--database-url", database_url,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert TOKEN.fullmatch(done.stdout.strip()), done.stdout
        assert done.stdout.strip() not in done.stderr
        tokens.append(done.stdout.strip())
    assert tokens[0] != tokens[1]


def test_create_admin_token_for_unknown_org_fails_cleanly(database_url: str) -> None:
    """An unknown organization is a clear error (exit 1), no traceback, no token."""
    done = gateway("create-admin-token", "--org", "nope", "--database-url", database_url)
    assert done.returncode == 1
    assert "nope" in done.stderr and "not found" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_bad_role_is_a_usage_error(database_url: str) -> None:
    """--role accepts admin or viewer only (exit 2)."""
    done = gateway(
        "create-admin-token", "--org", "a", "--role", "root", "--database-url", database_url
    )
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_offline_after_too_small_exits_78_as_a_process() -> None:
    """serve refuses a flapping configuration with exit 78 and a one-line reason."""
    done = gateway(
        "serve", "--database-url", "postgresql:///x", "--last-seen-debounce", "60s",
        "--heartbeat-interval", "30s", "--offline-after", "90s",
    )  # fmt: skip
    assert done.returncode == 78
    assert "--offline-after" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_database_fails_without_traceback(tmp_path: os.PathLike[str]) -> None:
    """A database that cannot be reached is exit 1 with a message, never a traceback."""
    url = f"postgresql:///x?host={tmp_path}&connect_timeout=2"
    done = gateway("create-org", "acme", "--database-url", url)
    assert done.returncode == 1
    assert done.stderr.strip()
    assert "Traceback" not in done.stderr


@pytest.fixture
def serving(database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``fleet-gateway serve --port 0`` as a process, with its port read from stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**clean_env(), "FLEET_DATABASE_URL": database_url},
    )
    try:
        assert proc.stderr is not None
        found = read_until(proc.stderr.fileno(), rb"listening on http://127\.0\.0\.1:(\d+)")
        yield proc, int(found.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()


def read_until(fd: int, pattern: bytes, timeout: float = 30.0) -> re.Match[bytes]:
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            if found := re.search(pattern, seen):
                return found
    raise AssertionError(f"{pattern!r} not seen; stderr so far: {seen!r}")


def test_serve_port_0_answers_and_exits_0_on_sigterm(
    serving: tuple[subprocess.Popen[bytes], int],
) -> None:
    """serve --port 0 prints its port, answers /healthz, and exits 0 on SIGTERM."""
    proc, port = serving
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
        assert resp.status == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_serve_exits_0_on_sigint(serving: tuple[subprocess.Popen[bytes], int]) -> None:
    """Ctrl-C (SIGINT) stops serve as cleanly as SIGTERM."""
    proc, _port = serving
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


def test_serve_json_logs_are_json_lines_without_secrets(database_url: str) -> None:
    """With --log-format json every stderr line is a JSON object, the RPC line names the
    client address, and the bearer token never appears."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", "0", "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**clean_env(), "FLEET_DATABASE_URL": database_url},
    )
    assert proc.stderr is not None
    try:
        port = int(read_until(proc.stderr.fileno(), rb"listening on http://[^:]+:(\d+)").group(1))
        secret = "s3cr3t-session-token-that-must-not-be-logged"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/fleetnodegateway.v1.FleetNodeGatewayService/UploadHeartbeat",
            data=b"{}",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        refused.value.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        output = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"ts", "level", "event"} <= line.keys() for line in lines)
    (rpc,) = [line for line in lines if line["event"] == "rpc"]
    assert (rpc["code"], rpc["client"]) == ("unauthenticated", "127.0.0.1")
    assert secret not in output


def test_port_in_use_is_a_clear_error(
    serving: tuple[subprocess.Popen[bytes], int], database_url: str
) -> None:
    """A second serve on a taken port says which address failed and exits 1, no traceback."""
    _proc, port = serving
    done = gateway("serve", "--port", str(port), "--database-url", database_url)
    assert done.returncode == 1
    assert f"cannot listen on http://127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def unauthenticated_calls(port: int, times: int) -> list[int]:
    """The HTTP statuses of ``times`` UploadEvents calls without credentials, each on a new
    connection."""
    url = f"http://127.0.0.1:{port}/fleetnodegateway.v1.FleetNodeGatewayService/UploadEvents"
    statuses = []
    for _ in range(times):
        request = urllib.request.Request(
            url, data=b"{}", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=10)
        statuses.append(answered.value.code)
        answered.value.close()
    return statuses


def test_reuse_port_lets_two_serve_processes_share_a_port(database_url: str) -> None:
    """With --reuse-port (or FLEET_REUSE_PORT=true) two serve processes listen on one port
    and the kernel spreads new connections over both; a third without it is refused."""
    first = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", "0", "--reuse-port"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**clean_env(), "FLEET_DATABASE_URL": database_url},
    )
    procs = [first]
    try:
        assert first.stderr is not None
        port = int(read_until(first.stderr.fileno(), rb"listening on http://[^:]+:(\d+)").group(1))
        second = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**clean_env(), "FLEET_DATABASE_URL": database_url, "FLEET_REUSE_PORT": "true"},
        )
        procs.append(second)
        assert second.stderr is not None
        read_until(second.stderr.fileno(), rb"listening on http://[^:]+:%d" % port)
        refused = gateway("serve", "--port", str(port), "--database-url", database_url)
        assert refused.returncode == 1 and "cannot listen" in refused.stderr

        # Each new connection lands on one of the two (by its address hash): both answer.
        assert unauthenticated_calls(port, 40) == [401] * 40
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(timeout=30) for proc in procs] == [0, 0]
        logs = [proc.stderr.read().decode() for proc in procs if proc.stderr is not None]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()
    calls = [log.count(" rpc ") for log in logs]
    assert sum(calls) == 40 and all(calls), calls


def requests_counted(metrics_port: int, procedure: str) -> float:
    """fleet_gateway_requests_total of one procedure, all codes, as one process reports it."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fleet_gateway_requests_total{") and f'/{procedure}"' in line
    )


def test_each_replica_on_a_shared_port_is_scraped_on_its_own_metrics_port(
    database_url: str,
) -> None:
    """With --reuse-port, --metrics-port gives each process a port of its own whose /metrics
    counts only the calls that process answered; together they count every call."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = 0
        metrics_ports = []
        for _ in range(2):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "serve",
                    "--reuse-port",
                    "--port",
                    str(port),
                    "--metrics-port",
                    "0",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={**clean_env(), "FLEET_DATABASE_URL": database_url},
            )
            procs.append(proc)
            assert proc.stderr is not None
            found = read_until(
                proc.stderr.fileno(),
                rb"listening on http://[^:]+:(\d+)(?s:.*)metrics on http://[^:]+:(\d+)/metrics",
            )
            port = int(found.group(1))
            metrics_ports.append(int(found.group(2)))
        assert len({port, *metrics_ports}) == 3

        assert unauthenticated_calls(port, 40) == [401] * 40
        counted = [requests_counted(mp, "UploadEvents") for mp in metrics_ports]
        assert sum(counted) == 40 and all(counted), counted
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()


def test_a_taken_metrics_port_is_a_clear_error(
    serving: tuple[subprocess.Popen[bytes], int], database_url: str
) -> None:
    """--metrics-port on a port in use says which address failed and exits 1."""
    _proc, taken = serving
    done = gateway(
        "serve", "--port", "0", "--metrics-port", str(taken), "--database-url", database_url
    )
    assert done.returncode == 1
    assert f"cannot serve metrics on http://127.0.0.1:{taken}" in done.stderr
    assert "Traceback" not in done.stderr
