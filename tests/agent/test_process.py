"""fleetnode as a real process: signals with a request in flight, the lock, piped enroll."""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.identity import Identity
from agent.state import State
from agent.statedir import StateStore
from tests.support.fake_gateway import API_KEY, ENROLLMENT_CODE, FakeGateway

FLEETNODE = [sys.executable, "-m", "agent"]


@pytest.fixture
def silent_listener() -> Iterator[tuple[socket.socket, str]]:
    """A loopback TCP listener that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(20)
    try:
        yield listener, f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def enrolled_state_dir(tmp_path: Path, server_url: str) -> tuple[StateStore, State]:
    identity = Identity.generate()
    state = State(
        server_url=server_url,
        fleet_node_id=9,
        name="proc-node",
        identity_fingerprint=identity.fingerprint,
        identity_public_key=identity.public_key.hex(),
        identity_private_key=identity.private_key_hex,
        api_key=API_KEY,
        session_token="T" * 43,
        session_expires_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=24),
    )
    store = StateStore(tmp_path / "state")
    store.save(state)
    return store, state


def start(store: StateStore, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*FLEETNODE, "--state-dir", str(store.directory), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_request(listener: socket.socket) -> socket.socket:
    """Accept the agent's connection and read its request head: it is now in flight."""
    conn, _ = listener.accept()
    conn.settimeout(20)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        assert chunk, "the agent closed the connection early"
        head += chunk
    assert b"POST /fleetnodegateway.v1.FleetNodeGatewayService/UploadHeartbeat" in head
    return conn


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_with_a_request_in_flight_exits_0_within_a_second(
    tmp_path: Path, silent_listener: tuple[socket.socket, str], signum: signal.Signals
) -> None:
    """SIGTERM or SIGINT during an unanswered heartbeat ends run with exit 0 within 1 s."""
    listener, url = silent_listener
    store, state = enrolled_state_dir(tmp_path, url)
    before = store.state_path.read_bytes()
    proc = start(store, "run")
    try:
        conn = wait_for_request(listener)
        sent = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=5)
        elapsed = time.monotonic() - sent
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
    assert code == 0, stderr
    assert elapsed < 1.0
    assert "shutting down" in stderr
    assert store.state_path.read_bytes() == before
    for secret in (API_KEY, state.session_token, state.identity_private_key):
        assert secret not in stderr


def test_second_run_on_the_same_state_exits_75_naming_the_first(
    tmp_path: Path, silent_listener: tuple[socket.socket, str]
) -> None:
    """While one run holds the state directory, a second exits 75 naming its pid."""
    listener, url = silent_listener
    store, _ = enrolled_state_dir(tmp_path, url)
    first = start(store, "run")
    try:
        conn = wait_for_request(listener)
        second = start(store, "run")
        _, stderr = second.communicate(timeout=20)
        assert second.returncode == 75
        assert str(first.pid) in stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=5) == 0
        conn.close()
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()


def test_piped_enroll_status_and_run_as_real_processes(
    tmp_path: Path, http_gateway: tuple[FakeGateway, str]
) -> None:
    """printf code/key | fleetnode enroll works; status --json reads it; run heartbeats."""
    gateway, url = http_gateway
    state_dir = str(tmp_path / "state")
    enrolled = subprocess.run(
        [*FLEETNODE, "--state-dir", state_dir, "enroll", "--server-url", url, "--name", "p1"],
        input=f"{ENROLLMENT_CODE}\n{API_KEY}\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    fields = dict(part.split("=", 1) for part in enrolled.stdout.split()[1:])
    assert enrolled.stdout.startswith("enrolled ")
    assert fields["fleet_node_id"] == "1"
    assert fields["state"] == os.path.join(state_dir, "state.json")
    assert f"fingerprint {fields['fingerprint']}" in enrolled.stderr

    status = subprocess.run(
        [*FLEETNODE, "--state-dir", state_dir, "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert status.returncode == 0
    assert json.loads(status.stdout)["identity_fingerprint"] == fields["fingerprint"]

    store = StateStore(Path(state_dir))
    run = start(store, "--log-format", "json", "run", "--heartbeat-interval", "1s")
    try:
        while len(gateway.heartbeats) < 2:
            assert gateway.heartbeat_received.wait(timeout=20)
            gateway.heartbeat_received.clear()
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=5) == 0
    finally:
        if run.poll() is None:
            run.kill()
        _, run_stderr = run.communicate()
    assert len(gateway.heartbeats) >= 2
    state = store.load()
    assert state is not None
    log_lines = [json.loads(line) for line in run_stderr.splitlines()]
    assert all(line.get("fleet_node_id") == 1 for line in log_lines)
    secrets = [ENROLLMENT_CODE, API_KEY, state.identity_private_key, *gateway.issued_tokens]
    for secret in secrets:
        for text in (enrolled.stdout, enrolled.stderr, status.stdout, run_stderr):
            assert secret not in text


def test_enroll_over_tls_verifies_the_gateway_with_the_ca_file(
    tmp_path: Path, https_gateway: tuple[FakeGateway, str, Path]
) -> None:
    """Over https, a gateway signed by an unknown CA is refused (69) and --ca-file trusts it;
    refresh then verifies with the CA file kept in the state."""
    gateway, url, pem = https_gateway
    state_dir = str(tmp_path / "state")
    base = [*FLEETNODE, "--state-dir", state_dir, "enroll", "--server-url", url, "--name", "t1"]
    piped = f"{ENROLLMENT_CODE}\n{API_KEY}\n"
    untrusted = subprocess.run(
        base, input=piped, capture_output=True, text=True, timeout=30, check=False
    )
    assert untrusted.returncode == 69
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert gateway.calls == []

    trusted = subprocess.run(
        [*base, "--ca-file", str(pem)],
        input=piped,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert trusted.returncode == 0, trusted.stderr
    refreshed = subprocess.run(
        [*FLEETNODE, "--state-dir", state_dir, "refresh"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refreshed.returncode == 0, refreshed.stderr
    assert refreshed.stdout.startswith("refreshed session_expires_at=")
