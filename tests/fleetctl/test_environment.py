"""fleetctl takes no connection settings from the environment (SPEC 5.8, issue 10 item 5).

Real loopback servers, no transport seam: the proxy and trust-store decisions are made by
the HTTP client fleetctl builds, so that is the one exercised here.
"""

from __future__ import annotations

import contextlib
import http.server
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from fleetctl.__main__ import run
from fleetwire import codec
from fleetwire import messages as m

TOKEN = "fleetadm_0123abcd_" + "A" * 43
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


class _ListingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a one-node ListFleetNodes page."""

    server: _Gateway

    def do_POST(self) -> None:
        self.server.paths.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = codec.encode(m.ListFleetNodesResponse((m.FleetNodeSummary(m.Int64(1), "n1"),)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output to the assertions


class _Gateway(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ListingHandler)
        self.paths: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Recorder(socketserver.BaseRequestHandler):
    server: _Proxy

    def handle(self) -> None:
        self.request.settimeout(5)
        try:
            self.server.seen.append(self.request.recv(4096))
        except OSError:
            self.server.seen.append(b"")


class _Proxy(socketserver.ThreadingTCPServer):
    """A loopback TCP server that records whatever connects to it, then hangs up."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.seen: list[bytes] = []


@contextlib.contextmanager
def _serving(server: socketserver.BaseServer) -> Iterator[None]:
    # A short poll interval: shutdown() waits for the serving loop to look.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def gateway() -> Iterator[_Gateway]:
    server = _Gateway()
    with _serving(server):
        yield server


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Proxy]:
    """A capturing proxy named by every proxy variable (and no NO_PROXY exemption)."""
    server = _Proxy()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with _serving(server):
        yield server


def test_proxy_variables_are_ignored(
    gateway: _Gateway, proxy: _Proxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """With HTTP_PROXY, HTTPS_PROXY and ALL_PROXY set, fleetctl goes straight to the gateway."""
    env = {"FLEET_ADMIN_TOKEN": TOKEN, "FLEET_SERVER_URL": f"http://127.0.0.1:{gateway.port}"}
    code = run(["nodes", "--json"], env)
    assert proxy.seen == [], "the proxy saw a connection (it would have seen the admin token)"
    assert code == 0, capsys.readouterr().err
    assert gateway.paths == ["/fleetnodeadmin.v1.FleetNodeAdminService/ListFleetNodes"]
    assert '"n1"' in capsys.readouterr().out


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_gateway(ca: trustme.CA) -> Iterator[_Gateway]:
    server = _Gateway()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with _serving(server):
        yield server


def test_ssl_cert_file_does_not_replace_the_trust_store(
    tls_gateway: _Gateway,
    ca: trustme.CA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CA named only by SSL_CERT_FILE is not trusted; the same CA given as --ca-file is."""
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    env = {"FLEET_ADMIN_TOKEN": TOKEN, "FLEET_SERVER_URL": f"https://127.0.0.1:{tls_gateway.port}"}

    assert run(["nodes"], env) == 69, "a CA from SSL_CERT_FILE was trusted"
    assert "cannot reach" in capsys.readouterr().err
    assert tls_gateway.paths == []

    assert run(["--ca-file", str(ca_pem), "nodes"], env) == 0, capsys.readouterr().err
    assert len(tls_gateway.paths) == 1
