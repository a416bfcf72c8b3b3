"""Authorization tricks over HTTP and real PostgreSQL: duplicated headers, odd schemes and
spacing, and every credential presented where another one belongs. Each is refused with
unauthenticated (or permission_denied for a known token of the wrong role), and no secret
reaches a log record."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from typing import Any

import attrs
import pytest
import pytest_asyncio
from hypothesis import example, given
from hypothesis import strategies as st
from multidict import CIMultiDict

from fleetwire import procedures as p
from gateway.app import create_app
from tests.support.gateway_hostile import (
    HOSTILE,
    Client,
    World,
    assert_clean,
    assert_world_intact,
    hostile_config,
    make_world,
    new_code,
    post,
)
from tests.support.gateway_http import b64

pytestmark = pytest.mark.asyncio

HEARTBEAT = json.dumps({"sentAt": "2026-11-26T12:00:00Z"}).encode()


@pytest_asyncio.fixture
async def world(aiohttp_client: Any, database_url: str) -> World:
    client: Client = await aiohttp_client(create_app(hostile_config(database_url)))
    return await make_world(client, database_url)


async def heartbeat_with(world: World, headers: CIMultiDict[str] | dict[str, str]) -> str:
    answer = await post(world.client, p.UPLOAD_HEARTBEAT.path, HEARTBEAT, headers)
    world.ledger.assert_not_in(answer)
    return assert_clean(answer, {"ok", "unauthenticated"})


async def list_with(world: World, authorization: str) -> str:
    answer = await post(
        world.client, p.LIST_FLEET_NODES.path, b"{}", {"Authorization": authorization}
    )
    world.ledger.assert_not_in(answer)
    return assert_clean(answer, {"ok", "unauthenticated"})


async def test_bearer_scheme_is_case_insensitive(world: World) -> None:
    """ "bearer", "BEARER" and "Bearer" all authenticate: RFC 7235 section 2.1 makes the
    auth-scheme a case-insensitive token, and RFC 6750 clients send it in any case, so
    refusing a lower-case scheme would break conforming clients for no security gain."""
    token = world.node.session_token
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert await heartbeat_with(world, {"Authorization": f"{scheme} {token}"}) == "ok"
        assert await list_with(world, f"{scheme} {world.admin}") == "ok"


async def test_spaces_around_the_token_are_tolerated_but_not_tabs_or_extra_words(
    world: World,
) -> None:
    """Several spaces between scheme and token, or around the value, are accepted (RFC 7235:
    1*SP, and HTTP strips OWS); a tab separator, a missing scheme, or a second word after
    the token is unauthenticated."""
    token = world.node.session_token
    for value in (f"Bearer   {token}", f"  Bearer {token}  "):
        assert await heartbeat_with(world, {"Authorization": value}) == "ok", value
    for value in (
        f"Bearer\t{token}",
        token,
        f"Bearer {token} {token}",
        f"Bearer {token},Bearer {token}",
        f"Bearer{token}",
        f"Bearer {token[:-1]}",
        f"Bearer {token}x",
        f"Bearer '{token}'",
        f"Basic {token}",
        f"Token {token}",
    ):
        assert await heartbeat_with(world, {"Authorization": value}) == "unauthenticated", value


async def test_empty_or_missing_credentials_are_unauthenticated(world: World) -> None:
    """No header, an empty header, a bare scheme or "Bearer " with nothing after it is
    unauthenticated, on the node and the admin API alike."""
    assert await heartbeat_with(world, {}) == "unauthenticated"
    for value in ("", " ", "Bearer", "Bearer ", "Bearer    ", "bearer\t"):
        assert await heartbeat_with(world, {"Authorization": value}) == "unauthenticated"
        assert await list_with(world, value) == "unauthenticated"


async def test_two_authorization_headers_are_unauthenticated(world: World) -> None:
    """Two Authorization headers are unauthenticated whatever they hold, even one valid and
    one empty, so a proxy and the gateway can never disagree on which one counts."""
    token = world.node.session_token
    for first, second in [
        (f"Bearer {token}", f"Bearer {token}"),
        (f"Bearer {token}", ""),
        ("", f"Bearer {token}"),
        (f"Bearer {token}", f"Bearer {world.admin}"),
    ]:
        headers: CIMultiDict[str] = CIMultiDict()
        headers.add("Authorization", first)
        headers.add("Authorization", second)
        assert await heartbeat_with(world, headers) == "unauthenticated"
    await assert_world_intact(world)


async def test_every_credential_in_the_wrong_place_is_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A credential presented where another kind belongs is unauthenticated: api key, admin
    token or enrollment code as a session; session, api key or code as an admin token;
    session, admin token or api key as an enrollment code; session, admin token or code as
    an api key. None of them is logged."""
    caplog.set_level(logging.DEBUG)
    fresh_code = await new_code(world.client, world.admin, world.ledger)
    node = world.node
    for wrong in (node.api_key, world.admin, world.viewer, world.node_code, fresh_code):
        assert await heartbeat_with(world, {"Authorization": f"Bearer {wrong}"}) == (
            "unauthenticated"
        ), wrong
    for wrong in (node.session_token, node.api_key, world.node_code, fresh_code):
        assert await list_with(world, f"Bearer {wrong}") == "unauthenticated", wrong
    key = b64(node.pubkey)
    for wrong in (node.session_token, world.admin, node.api_key, world.node_code):
        body = {"enrollmentToken": wrong, "name": "impostor", "identityPubkey": b64(bytes(32))}
        answer = await post(world.client, p.REGISTER.path, json.dumps(body).encode())
        assert answer.body == {"code": "unauthenticated", "message": "invalid enrollment code"}
    for wrong in (node.session_token, world.admin, fresh_code):
        body = {"apiKey": wrong, "identityPubkey": key}
        answer = await post(world.client, p.BEGIN_AUTH_HANDSHAKE.path, json.dumps(body).encode())
        assert answer.body == {"code": "unauthenticated", "message": "invalid api key"}
    await assert_world_intact(world)
    world.ledger.assert_not_logged(caplog.records)


async def test_viewer_token_gets_permission_denied_for_admin_calls(world: World) -> None:
    """A viewer token may list; creating codes, confirming and revoking are permission_denied
    and change nothing."""
    viewer = {"Authorization": f"Bearer {world.viewer}"}
    assert assert_clean(await post(world.client, p.LIST_FLEET_NODES.path, b"{}", viewer), {"ok"})
    node_id = json.dumps({"fleetNodeId": str(world.node.fleet_node_id)}).encode()
    for procedure, body in [
        (p.CREATE_ENROLLMENT_CODE, b"{}"),
        (p.CONFIRM_FLEET_NODE, node_id),
        (p.REVOKE_FLEET_NODE, node_id),
    ]:
        answer = await post(world.client, procedure.path, body, viewer)
        assert assert_clean(answer, {"permission_denied"}) == "permission_denied"
    await assert_world_intact(world)


async def test_another_organizations_token_sees_nothing_and_changes_nothing(world: World) -> None:
    """An admin token of another organization lists none of acme's nodes, and confirming or
    revoking acme's node is not_found, exactly like an id that does not exist."""
    other = {"Authorization": f"Bearer {world.other_admin}"}
    listed = await post(world.client, p.LIST_FLEET_NODES.path, b"{}", other)
    assert listed.body == {}
    for procedure in (p.CONFIRM_FLEET_NODE, p.REVOKE_FLEET_NODE):
        for node_id in (world.node.fleet_node_id, 10**12):
            body = json.dumps({"fleetNodeId": str(node_id)}).encode()
            answer = await post(world.client, procedure.path, body, other)
            assert answer.body == {"code": "not_found", "message": "fleet node not found"}
    await assert_world_intact(world)


@HOSTILE
@given(
    value=st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E)
        | st.characters(min_codepoint=0xA0, max_codepoint=0xFF),
        max_size=120,
    )
)
@example(value="Bearer " + "A" * 43)
@example(value="Bearer fleetadm_00000000_" + "A" * 43)
@example(value="Bearer %s%s%s%s' OR '1'='1")
async def test_any_authorization_value_is_refused_cleanly(
    world: World, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    """Any other Authorization value is unauthenticated on the node and admin APIs alike."""
    caplog.set_level(logging.DEBUG)
    assert await heartbeat_with(world, {"Authorization": value}) == "unauthenticated"
    assert await list_with(world, value) == "unauthenticated"
    world.ledger.assert_not_logged(caplog.records)
    caplog.clear()


async def raw_request(client: Client, head: bytes, body: bytes) -> bytes:
    """One request written byte for byte (the client library would refuse these headers)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_malformed_authorization_header_line_keeps_the_token_out_of_the_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A session token followed by a control character (NUL, ^A, a bare CR) is refused by the
    HTTP parser with 400, and the log says which protocol error it was without quoting the
    raw header line, so the token never reaches a log record."""
    caplog.set_level(logging.DEBUG)
    token = world.node.session_token.encode()
    for tail in (b"\x00", b"\x01x", b"\r"):
        head = (
            b"POST " + p.UPLOAD_HEARTBEAT.path.encode() + b" HTTP/1.1\r\nHost: gw\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer " + token + tail + b"\r\n"
        )
        answer = await raw_request(world.client, head, HEARTBEAT)
        assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:80]
    protocol_errors = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(protocol_errors) == 3
    assert all("BadHttpMessage" in r.getMessage() for r in protocol_errors)
    world.ledger.assert_not_logged(caplog.records)
    await assert_world_intact(world)


@pytest_asyncio.fixture
async def proxied(aiohttp_client: Any, database_url: str) -> Client:
    """A gateway that trusts the loopback peer as a reverse proxy (SPEC 6.3)."""
    config = attrs.evolve(
        hostile_config(database_url), trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    client: Client = await aiohttp_client(create_app(config))
    return client


FORWARD_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\u00e9\u00ff"),
    max_size=60,
)


@HOSTILE
@given(forwarded_for=FORWARD_TEXT, forwarded_proto=FORWARD_TEXT, forwarded=FORWARD_TEXT)
@example(forwarded_for="[fe80::1%eth0]:80, ::ffff:127.0.0.1", forwarded_proto="", forwarded="")
@example(
    forwarded_for="",
    forwarded_proto="",
    forwarded='for="[::1',
)
@example(forwarded_for="", forwarded_proto="HTTPS", forwarded="for=unknown;proto=gopher;by=_x")
async def test_any_forwarding_headers_from_a_trusted_proxy_are_handled(
    proxied: Client,
    caplog: pytest.LogCaptureFixture,
    forwarded_for: str,
    forwarded_proto: str,
    forwarded: str,
) -> None:
    """Whatever X-Forwarded-For, X-Forwarded-Proto and Forwarded say behind a trusted proxy,
    the call is answered normally and logged with an IP address (or the peer's)."""
    caplog.set_level(logging.INFO, logger="gateway.connect")
    headers = {
        "X-Forwarded-For": forwarded_for,
        "X-Forwarded-Proto": forwarded_proto,
        "Forwarded": forwarded,
    }
    answer = await post(proxied, p.REGISTER.path, b"{}", headers)
    assert assert_clean(answer, {"invalid_argument"}) == "invalid_argument"
    [record] = [r for r in caplog.records if r.name == "gateway.connect"]
    ipaddress.ip_address(record.__dict__["client"].partition("%")[0])
    caplog.clear()
