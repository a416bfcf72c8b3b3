"""``fleet-gateway serve`` as a process: what it tells whoever started it."""

from __future__ import annotations

import httpx

from tests.e2e.actors import GATEWAY_TIMINGS
from tests.e2e.harness import Harness, clean_env, free_port, program, wait_until


def test_serve_announces_its_address_at_every_log_level(
    harness: Harness, database_url: str
) -> None:
    """``serve --log-level warning`` still prints "listening on http://HOST:PORT" (the only way
    to learn the port of ``--port 0``) by the time it answers requests."""
    port = free_port()
    gateway = harness.start(
        "gateway-quiet",
        [
            program("fleet-gateway"), "--database-url", database_url,
            "--host", "127.0.0.1", "--port", str(port), *GATEWAY_TIMINGS,
            "--log-level", "warning", "serve",
        ],
        clean_env(),
    )  # fmt: skip

    def serving() -> bool:
        assert gateway.running(), gateway.tail()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    # The line is written before the server takes its first request, if it is written.
    wait_until(serving, timeout=20, what="the gateway to serve", detail=gateway.tail)
    assert f"listening on http://127.0.0.1:{port}" in gateway.text(), gateway.tail()
