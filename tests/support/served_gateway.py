"""The fake gateway behind a real loopback HTTP(S) server on a thread, for the agent run as a
real process or over a real socket (TLS with a private trustme CA)."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trustme

from tests.support.fake_gateway import Call, FakeGateway


class _Handler(http.server.BaseHTTPRequestHandler):
    gateway: FakeGateway

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        method = self.path.rsplit("/", 1)[-1]
        headers = {key.lower(): value for key, value in self.headers.items()}
        response = self.gateway.respond(method, headers, body)
        self.gateway.calls.append(
            Call(0.0, method, headers.get("authorization"), response.status_code)
        )
        self.send_response(response.status_code)
        for key, value in response.headers.items():
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_fake_gateway(tls: ssl.SSLContext | None) -> Iterator[tuple[FakeGateway, str]]:
    """The fake gateway behind a real loopback HTTP(S) server, on a thread."""
    fake = FakeGateway(
        wall_clock=lambda: datetime.datetime.now(datetime.UTC), monotonic=lambda: 0.0
    )
    handler = type("Handler", (_Handler,), {"gateway": fake})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "http" if tls is None else "https"
    try:
        yield fake, f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def serve_tls_fake_gateway(ca_pem: Path) -> Iterator[tuple[FakeGateway, str]]:
    """The fake gateway over TLS, its certificate signed by a new private CA whose PEM is
    written to ``ca_pem``."""
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    ca.cert_pem.write_to_path(str(ca_pem))
    with serve_fake_gateway(tls) as served:
        yield served
