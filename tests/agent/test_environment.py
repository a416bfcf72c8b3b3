"""Connection settings never come from the environment (SPEC 5.8): a proxy variable would
hand the secrets to the proxy, a CA variable would silently replace the trust store.
Real sockets to a loopback fake gateway, the command run in process with the variables set."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import trio

from agent.statedir import StateStore
from tests.support.commands import run_command
from tests.support.enrolled_node import make_enrolled_state
from tests.support.served_gateway import serve_fake_gateway, serve_tls_fake_gateway

pytestmark = pytest.mark.trio

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


async def test_refresh_ignores_proxy_variables_and_netrc(
    store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTP_PROXY, HTTPS_PROXY and ALL_PROXY naming a listening proxy and a .netrc
    holding credentials for the gateway's host, refresh goes straight to the gateway and
    succeeds: the proxy sees no connection, no request carries the netrc credentials."""
    connections: list[bytes] = []

    async def capture(stream: trio.SocketStream) -> None:
        async with stream:
            connections.append(await stream.receive_some(65536))

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login netrc-user password netrc-pw\n")
    (tmp_path / ".netrc").chmod(0o600)
    for name in ("NO_PROXY", "no_proxy", *(v.lower() for v in PROXY_VARIABLES)):
        monkeypatch.delenv(name, raising=False)
    with serve_fake_gateway(None) as (gateway, url):
        make_enrolled_state(store, gateway, server_url=url)
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, capture, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            for name in PROXY_VARIABLES:
                monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
            with trio.fail_after(30):
                outcome = await run_command(store, None, "refresh")
            nursery.cancel_scope.cancel()
    assert connections == [], connections
    assert outcome.code == 0, outcome.stderr
    assert [call.method for call in gateway.calls] == [
        "BeginAuthHandshake",
        "CompleteAuthHandshake",
    ]
    assert all(call.authorization is None for call in gateway.calls)


async def test_ssl_cert_file_does_not_replace_the_trust_store(
    store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SSL_CERT_FILE naming the private CA that signed the gateway's certificate and no
    --ca-file in the state, refresh refuses the certificate (69) and sends nothing."""
    pem = tmp_path / "ca.pem"
    with serve_tls_fake_gateway(pem) as (gateway, url):
        make_enrolled_state(store, gateway, server_url=url)
        monkeypatch.setenv("SSL_CERT_FILE", str(pem))
        with trio.fail_after(30):
            outcome = await run_command(store, None, "refresh")
    assert outcome.code == 69, outcome.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.stderr
    assert gateway.calls == []
