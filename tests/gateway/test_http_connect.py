"""The Connect unary adapter over real HTTP and a real services (SPEC 2): framing, order
of checks, error shape, compression, deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from fleetwire import procedures as p
from gateway.app import create_app
from gateway.config import Config
from gateway.metrics import Metrics
from gateway.principals import Role
from gateway.services import Services, open_services
from tests.support.gateway_http import call, enroll, heartbeat, new_admin_token, now_rfc3339

pytestmark = pytest.mark.asyncio

Client = TestClient[Any, Any]


@pytest_asyncio.fixture
async def client(aiohttp_client: Any, database_url: str) -> Client:
    app = create_app(Config(database_url=database_url, auth_burst=1000))
    result: Client = await aiohttp_client(app)
    return result


@pytest_asyncio.fixture
async def session(client: Client, database_url: str) -> str:
    """A live session token of a freshly enrolled node."""
    node = await enroll(client, await new_admin_token(database_url), "node-a")
    return node.session_token


async def test_other_content_type_is_415(client: Client) -> None:
    """A body that is not application/json gets HTTP 415."""
    reply = await call(client, p.REGISTER, b"{}", headers={"Content-Type": "application/proto"})
    assert reply.status == 415
    reply = await call(
        client, p.REGISTER, b"{}", headers={"Content-Type": "application/json; charset=latin-1"}
    )
    assert reply.status == 415


async def test_charset_utf8_suffix_is_accepted(client: Client) -> None:
    """application/json; charset=utf-8 is JSON: the body is validated, not refused."""
    reply = await call(
        client, p.REGISTER, b"{}", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert reply.status == 400
    assert reply.body["code"] == "invalid_argument"


async def test_get_is_405_with_allow_post(client: Client) -> None:
    """Any method but POST on an RPC path gets 405 and Allow: POST."""
    for method in ("GET", "PUT", "DELETE"):
        async with client.request(method, p.UPLOAD_HEARTBEAT.path) as resp:
            assert resp.status == 405
            assert resp.headers["Allow"] == "POST"


async def test_body_over_64_kib_is_resource_exhausted(client: Client) -> None:
    """A body over 64 KiB is refused with resource_exhausted before it is parsed."""
    big = b'{"name": "' + b"x" * (64 * 1024) + b'"}'
    reply = await call(client, p.REGISTER, big)
    assert reply.status == 429
    assert reply.body["code"] == "resource_exhausted"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(70):
            yield b" " * 1024

    async with client.post(p.REGISTER.path, data=chunks(), headers=JSON_CT) as resp:
        assert resp.status == 429
        assert (await resp.json())["code"] == "resource_exhausted"


JSON_CT = {"Content-Type": "application/json"}


async def test_gzip_bomb_is_resource_exhausted(client: Client, session: str) -> None:
    """A small gzip body that inflates past 64 KiB is refused without inflating it all."""
    bomb = gzip.compress(b" " * (50 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    reply = await call(
        client, p.UPLOAD_HEARTBEAT, bomb, token=session, headers={"Content-Encoding": "gzip"}
    )
    assert reply.status == 429
    assert reply.body["code"] == "resource_exhausted"


async def test_gzip_request_is_accepted(client: Client, session: str) -> None:
    """A gzip-compressed request (as connectrpc clients send) is decoded and served."""
    body = gzip.compress(json.dumps({"sentAt": now_rfc3339()}).encode())
    reply = await call(
        client, p.UPLOAD_HEARTBEAT, body, token=session, headers={"Content-Encoding": "gzip"}
    )
    assert reply.status == 200, reply.body
    assert reply.body["heartbeatIntervalSeconds"] == 30


async def test_corrupt_gzip_is_invalid_argument(client: Client, session: str) -> None:
    """A body that claims gzip but is not gets invalid_argument."""
    reply = await call(
        client, p.UPLOAD_HEARTBEAT, b"{}", token=session, headers={"Content-Encoding": "gzip"}
    )
    assert reply.status == 400
    assert reply.body == {"code": "invalid_argument", "message": "request body is not valid gzip"}


async def test_other_content_encoding_is_unimplemented(client: Client) -> None:
    """Compression other than gzip gets unimplemented."""
    reply = await call(client, p.REGISTER, b"{}", headers={"Content-Encoding": "br"})
    assert reply.status == 501
    assert reply.body["code"] == "unimplemented"


def gzip_layers(data: bytes, layers: int) -> bytes:
    for _ in range(layers):
        data = gzip.compress(data, mtime=0)
    return data


async def test_more_than_one_gzip_layer_is_unimplemented_before_authentication(
    client: Client, session: str
) -> None:
    """Two gzip codings (in one header or in two) are unimplemented before any decompression
    and before authentication; identity codings do not count."""
    heartbeat_json = json.dumps({"sentAt": now_rfc3339()}).encode()
    twice = gzip_layers(heartbeat_json, 2)
    for codings in (["gzip, gzip"], ["gzip", "gzip"], ["GZIP,identity, gzip"]):
        headers = CIMultiDict(JSON_CT)
        for coding in codings:
            headers.add("Content-Encoding", coding)
        # No Authorization at all: the coding is refused first.
        async with client.post(p.UPLOAD_HEARTBEAT.path, data=twice, headers=headers) as resp:
            assert resp.status == 501
            assert (await resp.json()) == {
                "code": "unimplemented",
                "message": "at most one gzip Content-Encoding is accepted",
            }
    once = gzip_layers(heartbeat_json, 1)
    reply = await call(
        client,
        p.UPLOAD_HEARTBEAT,
        once,
        token=session,
        headers={"Content-Encoding": "identity, gzip, identity"},
    )
    assert reply.status == 200, reply.body


async def test_authentication_comes_before_body_validation(client: Client, session: str) -> None:
    """A malformed heartbeat is unauthenticated without a session, invalid_argument with one."""
    reply = await call(client, p.UPLOAD_HEARTBEAT, b'{"sentAt": 12')
    assert reply.status == 401
    assert reply.body["code"] == "unauthenticated"
    reply = await call(client, p.UPLOAD_HEARTBEAT, b'{"sentAt": 12', token="not-a-session-token")
    assert reply.status == 401
    reply = await call(client, p.UPLOAD_HEARTBEAT, b'{"sentAt": 12', token=session)
    assert reply.status == 400
    assert reply.body["code"] == "invalid_argument"
    reply = await call(client, p.UPLOAD_HEARTBEAT, {}, token=session)
    assert reply.body == {"code": "invalid_argument", "message": "sentAt: is required"}


async def test_viewer_gets_permission_denied_before_its_body_is_validated(
    client: Client, database_url: str
) -> None:
    """A viewer's malformed call to an admin-only method is permission_denied (the role is
    part of authentication, which comes before validation); a listing is validated."""
    viewer = await new_admin_token(database_url, role=Role.VIEWER)
    for procedure in (p.CONFIRM_FLEET_NODE, p.REVOKE_FLEET_NODE, p.CREATE_ENROLLMENT_CODE):
        for body in (b'{"fleetNodeId": 12', b'{"fleetNodeId": "x", "ttlSeconds": -1}'):
            reply = await call(client, procedure, body, token=viewer)
            assert (reply.status, reply.body["code"]) == (403, "permission_denied"), procedure
    reply = await call(client, p.LIST_FLEET_NODES, b'{"pageSize": 12', token=viewer)
    assert (reply.status, reply.body["code"]) == (400, "invalid_argument")


async def test_error_body_shape_and_content_type(client: Client) -> None:
    """Errors are application/json {"code", "message"} with Connect's HTTP status."""
    async with client.post(p.REGISTER.path, data=b"[1, 2", headers=JSON_CT) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/json"
        assert await resp.json() == {
            "code": "invalid_argument",
            "message": "request body is not valid JSON",
        }


async def test_deeply_nested_json_is_invalid_argument(client: Client) -> None:
    """A body nested thousands of levels deep is invalid_argument, not a 500."""
    reply = await call(client, p.REGISTER, b"[" * 20000 + b"]" * 20000)
    assert reply.status == 400
    assert reply.body["code"] == "invalid_argument"


async def test_unknown_procedure_is_404_unimplemented(client: Client) -> None:
    """An unknown procedure gets HTTP 404 with code unimplemented."""
    reply = await call(client, "/fleetnodegateway.v1.FleetNodeGatewayService/Nope", {})
    assert reply.status == 404
    assert reply.body["code"] == "unimplemented"
    reply = await call(client, "/no.such.Service/Register", {})
    assert (reply.status, reply.body["code"]) == (404, "unimplemented")


async def test_two_authorization_headers_are_unauthenticated(client: Client, session: str) -> None:
    """Two Authorization headers on one request get unauthenticated, even if both are valid."""
    headers = CIMultiDict(JSON_CT)
    headers.add("Authorization", f"Bearer {session}")
    headers.add("Authorization", f"Bearer {session}")
    body = json.dumps({"sentAt": now_rfc3339()})
    async with client.post(p.UPLOAD_HEARTBEAT.path, data=body, headers=headers) as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "unauthenticated"


async def test_wrong_scheme_is_unauthenticated(client: Client, session: str) -> None:
    """Only the Bearer scheme authenticates."""
    body = json.dumps({"sentAt": now_rfc3339()}).encode()
    reply = await call(
        client, p.UPLOAD_HEARTBEAT, body, headers={"Authorization": f"Basic {session}"}
    )
    assert (reply.status, reply.body["code"]) == (401, "unauthenticated")
    assert (await heartbeat(client, session)).status == 200


async def test_node_token_is_not_an_admin_token(client: Client, session: str) -> None:
    """A session token does not open the admin API."""
    reply = await call(client, p.LIST_FLEET_NODES, {}, token=session)
    assert (reply.status, reply.body["code"]) == (401, "unauthenticated")


async def test_telemetry_and_events_are_unimplemented_after_auth(
    client: Client, session: str
) -> None:
    """UploadTelemetry/UploadEvents: unauthenticated without a session, else unimplemented."""
    for procedure in (p.UPLOAD_TELEMETRY, p.UPLOAD_EVENTS):
        assert (await call(client, procedure, {})).status == 401
        reply = await call(client, procedure, {}, token=session)
        assert (reply.status, reply.body["code"]) == (501, "unimplemented")


async def test_protocol_version_other_than_1_is_invalid(client: Client, session: str) -> None:
    """Connect-Protocol-Version: 1 is accepted, another version is invalid_argument."""
    body = json.dumps({"sentAt": now_rfc3339()}).encode()
    ok = await call(
        client, p.UPLOAD_HEARTBEAT, body, token=session, headers={"Connect-Protocol-Version": "1"}
    )
    assert ok.status == 200
    bad = await call(
        client, p.UPLOAD_HEARTBEAT, body, token=session, headers={"Connect-Protocol-Version": "2"}
    )
    assert (bad.status, bad.body["code"]) == (400, "invalid_argument")


async def test_large_response_is_gzipped_when_accepted(client: Client, database_url: str) -> None:
    """A response worth compressing is gzip-encoded when the client accepts gzip."""
    admin = await new_admin_token(database_url)
    for n in range(12):
        await enroll(client, admin, f"node-with-a-rather-long-name-{n:02d}")
    async with client.post(
        p.LIST_FLEET_NODES.path,
        data=b"{}",
        headers={**JSON_CT, "Authorization": f"Bearer {admin}", "Accept-Encoding": "gzip"},
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert len((await resp.json())["fleetNodes"]) == 12
    async with client.post(
        p.LIST_FLEET_NODES.path,
        data=b"{}",
        headers={**JSON_CT, "Authorization": f"Bearer {admin}", "Accept-Encoding": "identity"},
    ) as resp:
        assert "Content-Encoding" not in resp.headers
        assert len((await resp.json())["fleetNodes"]) == 12


class ExplodingEnrollment:
    async def register(self, req: Any) -> Any:
        raise RuntimeError('relation "secret_codes" does not exist: SELECT code_hash FROM x')


class StuckHeartbeats:
    async def record(self, principal: Any, req: Any) -> Any:
        await asyncio.Event().wait()


def open_with(**swapped: Any) -> Any:
    """The real services with some of them swapped (the injected seam of create_app)."""

    @contextlib.asynccontextmanager
    async def opener(config: Config, metrics: Metrics) -> AsyncIterator[Services]:
        async with open_services(config, metrics) as opened:
            yield attrs.evolve(opened, **swapped)

    return opener


async def test_internal_error_leaks_nothing(
    aiohttp_client: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception becomes internal "internal error"; its text stays in the log."""
    app = create_app(
        Config(database_url=database_url), open_services=open_with(enrollment=ExplodingEnrollment())
    )
    client = await aiohttp_client(app)
    body = {"enrollmentToken": "c" * 43, "name": "n", "identityPubkey": "A" * 43 + "="}
    with caplog.at_level(logging.ERROR, logger="gateway.connect"):
        async with client.post(p.REGISTER.path, data=json.dumps(body), headers=JSON_CT) as resp:
            raw = await resp.read()
            assert resp.status == 500
    assert json.loads(raw) == {"code": "internal", "message": "internal error"}
    assert b"secret" not in raw and b"SELECT" not in raw and b"Traceback" not in raw
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    assert "secret_codes" in str(logged[0].exc_info[1])  # type: ignore[index]


async def test_connect_timeout_bounds_the_call(aiohttp_client: Any, database_url: str) -> None:
    """Connect-Timeout-Ms ends a call that takes too long with deadline_exceeded."""
    app = create_app(
        Config(database_url=database_url, auth_burst=100),
        open_services=open_with(heartbeats=StuckHeartbeats()),
    )
    client = await aiohttp_client(app)
    node = await enroll(client, await new_admin_token(database_url), "slow")
    reply = await call(
        client,
        p.UPLOAD_HEARTBEAT,
        {"sentAt": now_rfc3339()},
        token=node.session_token,
        headers={"Connect-Timeout-Ms": "50"},
    )
    assert (reply.status, reply.body["code"]) == (504, "deadline_exceeded")
    bad = await call(
        client,
        p.UPLOAD_HEARTBEAT,
        {"sentAt": now_rfc3339()},
        token=node.session_token,
        headers={"Connect-Timeout-Ms": "soon"},
    )
    assert (bad.status, bad.body["code"]) == (400, "invalid_argument")


async def test_metrics_count_requests_by_procedure_and_code(client: Client, session: str) -> None:
    """/metrics counts answered calls by procedure and code."""
    await heartbeat(client, session)
    await call(client, p.UPLOAD_HEARTBEAT, {})
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    hb = "fleetnodegateway.v1.FleetNodeGatewayService/UploadHeartbeat"
    assert f'fleet_gateway_requests_total{{code="ok",procedure="{hb}"}} 1.0' in text
    assert f'fleet_gateway_requests_total{{code="unauthenticated",procedure="{hb}"}} 1.0' in text
    assert "fleet_gateway_request_seconds_bucket" in text
    assert session not in text


async def test_every_procedure_is_served(client: Client) -> None:
    """Every procedure of both services has a route: none answers 404."""
    for procedure in p.ALL:
        reply = await call(client, procedure, b"{")
        assert reply.status in (400, 401), (procedure.path, reply.status)
