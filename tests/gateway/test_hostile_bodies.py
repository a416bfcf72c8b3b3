"""Hostile request bodies against every procedure, over HTTP and real PostgreSQL: arbitrary
bytes, wrong JSON types, huge strings, bad base64, int64 edges, duplicate keys. Every answer
is a clean Connect error (or a success), never a 500; nothing is lost; no secret is logged.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import math
import re
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import example, given
from hypothesis import strategies as st

from fleetwire import procedures as p
from fleetwire.procedures import Procedure
from fleetwire.validators import INT64_MAX, INT64_MIN
from gateway.app import create_app
from tests.fleetwire.json_strategies import request_bodies
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

# What a hostile body may get, per procedure, when the caller holds the right credential
# (admin calls use the other organization's token, so no hostile id can reach acme's node).
ALLOWED: dict[Procedure[Any, Any], set[str]] = {
    p.REGISTER: {"invalid_argument", "unauthenticated"},
    p.BEGIN_AUTH_HANDSHAKE: {"invalid_argument", "unauthenticated"},
    p.COMPLETE_AUTH_HANDSHAKE: {"invalid_argument", "unauthenticated"},
    p.UPLOAD_HEARTBEAT: {"ok", "invalid_argument"},
    p.UPLOAD_TELEMETRY: {"unimplemented"},
    p.UPLOAD_EVENTS: {"unimplemented"},
    p.CREATE_ENROLLMENT_CODE: {"ok", "invalid_argument"},
    p.LIST_FLEET_NODES: {"ok", "invalid_argument"},
    p.CONFIRM_FLEET_NODE: {"not_found", "invalid_argument"},
    p.REVOKE_FLEET_NODE: {"not_found", "invalid_argument"},
    p.LIST_ENROLLMENT_CODES: {"ok", "invalid_argument"},
    p.REVOKE_ENROLLMENT_CODE: {"not_found", "invalid_argument"},
    # A node filter names a node of the organization or is not_found (gateway/events.py).
    p.LIST_FLEET_NODE_EVENTS: {"ok", "invalid_argument", "not_found"},
    p.GET_FLEET_SUMMARY: {"ok", "invalid_argument"},
}
NODE_PROCEDURES = {p.UPLOAD_HEARTBEAT, p.UPLOAD_TELEMETRY, p.UPLOAD_EVENTS}
ADMIN_PROCEDURES = {
    p.CREATE_ENROLLMENT_CODE,
    p.LIST_FLEET_NODES,
    p.CONFIRM_FLEET_NODE,
    p.REVOKE_FLEET_NODE,
    p.LIST_ENROLLMENT_CODES,
    p.REVOKE_ENROLLMENT_CODE,
    p.LIST_FLEET_NODE_EVENTS,
    p.GET_FLEET_SUMMARY,
}
PROCEDURES = st.sampled_from(p.ALL)


@pytest_asyncio.fixture
async def world(aiohttp_client: Any, database_url: str) -> World:
    client: Client = await aiohttp_client(create_app(hostile_config(database_url)))
    return await make_world(client, database_url)


def credential(world: World, procedure: Procedure[Any, Any]) -> dict[str, str]:
    if procedure in NODE_PROCEDURES:
        return {"Authorization": f"Bearer {world.node.session_token}"}
    if procedure in ADMIN_PROCEDURES:
        return {"Authorization": f"Bearer {world.other_admin}"}
    return {}


async def send_hostile(
    world: World, caplog: pytest.LogCaptureFixture, procedure: Procedure[Any, Any], body: bytes
) -> str:
    caplog.set_level(logging.DEBUG)
    answer = await post(world.client, procedure.path, body, credential(world, procedure))
    code = assert_clean(answer, ALLOWED[procedure])
    world.ledger.assert_not_in(answer)
    await assert_world_intact(world)
    world.ledger.assert_not_logged(caplog.records)
    caplog.clear()
    return code


@HOSTILE
@given(procedure=PROCEDURES, body=st.binary(max_size=400))
@example(procedure=p.REGISTER, body=b"\xef\xbb\xbf{}")
@example(procedure=p.UPLOAD_HEARTBEAT, body=b'{"sentAt": "\xff\xfe"}')
@example(procedure=p.LIST_FLEET_NODES, body=b"[" * 50_000)
@example(procedure=p.CONFIRM_FLEET_NODE, body=b'{"fleetNodeId": 1e400}')
async def test_arbitrary_bytes_get_a_clean_answer(
    world: World, caplog: pytest.LogCaptureFixture, procedure: Procedure[Any, Any], body: bytes
) -> None:
    """Any bytes as a body, to any procedure, get a Connect error or a success; never 500."""
    await send_hostile(world, caplog, procedure, body)


@HOSTILE
@given(procedure=PROCEDURES, data=st.data())
async def test_wrong_json_types_get_invalid_argument(
    world: World, caplog: pytest.LogCaptureFixture, procedure: Procedure[Any, Any], data: Any
) -> None:
    """Any JSON values under a procedure's own keys get a clean answer; never 500."""
    body = data.draw(request_bodies(procedure.request_type))
    await send_hostile(world, caplog, procedure, json.dumps(body).encode())


def int64_or_none(value: int | str) -> float:
    """What a fleetNodeId means as an integer (-inf when it is not a decimal integer)."""
    if isinstance(value, int):
        return value
    decimal = re.fullmatch(r"(-?)0*([0-9]{1,25})", value)
    if decimal is None:
        return -math.inf if len(value) < 30 or not value.lstrip("-").isdigit() else math.inf
    return int(decimal.group(1) + decimal.group(2))


@HOSTILE
@given(
    value=st.integers()
    | st.sampled_from([INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 0, -1])
    | st.sampled_from(["1" * 30, "-" + "9" * 5000, "0" * 100 + "7", "1.5", "0x1", " 1", ""]),
    as_string=st.booleans(),
    procedure=st.sampled_from([p.CONFIRM_FLEET_NODE, p.REVOKE_FLEET_NODE]),
)
async def test_node_ids_outside_int64_or_below_one_are_invalid_argument(
    world: World,
    caplog: pytest.LogCaptureFixture,
    value: int | str,
    as_string: bool,
    procedure: Procedure[Any, Any],
) -> None:
    """fleetNodeId outside 1..2^63-1, as number or string, is invalid_argument; inside it,
    an id the organization does not own is not_found."""
    sent: int | str = str(value) if as_string and isinstance(value, int) else value
    body = json.dumps({"fleetNodeId": sent}).encode()
    code = await send_hostile(world, caplog, procedure, body)
    assert code == ("not_found" if 1 <= int64_or_none(value) <= INT64_MAX else "invalid_argument")


@HOSTILE
@given(size=st.integers(min_value=-(2**40), max_value=2**40), token=st.text(max_size=80))
@example(size=1001, token="")
@example(size=1, token="bjo5OTk5OTk5OTk5OTk5OTk5OTk5OQ")  # "n:99999999999999999999"
@example(size=1, token="bjow")  # "n:0"
@example(size=1, token="bjotMQ")  # "n:-1"
@example(size=1, token="bjo5MjIzMzcyMDM2ODU0Nzc1ODA3")  # "n:9223372036854775807"
@example(size=1, token="'; DROP TABLE fleet_nodes;--")
async def test_list_paging_arguments_are_validated(
    world: World, caplog: pytest.LogCaptureFixture, size: int, token: str
) -> None:
    """Any pageSize and pageToken get a listing or invalid_argument, never a 500."""
    body = json.dumps({"pageSize": size, "pageToken": token}).encode()
    code = await send_hostile(world, caplog, p.LIST_FLEET_NODES, body)
    if not 0 <= size <= 1000:
        assert code == "invalid_argument"


async def test_page_token_past_int64_is_invalid_argument(world: World) -> None:
    """A page token naming an id past int64 is invalid_argument "malformed page token"."""
    token = base64.urlsafe_b64encode(b"n:9223372036854775808").rstrip(b"=").decode()
    answer = await post(
        world.client,
        p.LIST_FLEET_NODES.path,
        json.dumps({"pageToken": token}).encode(),
        credential(world, p.LIST_FLEET_NODES),
    )
    assert answer.body == {"code": "invalid_argument", "message": "pageToken: malformed page token"}


BAD_BASE64 = [
    "not base64!",
    "QUFB\nQUFB",
    "A",
    "====",
    "QQ===",
    "%%%",
    "\u0661\u0662",
    "A" * 44 + "@",
]


async def test_bad_base64_is_invalid_argument_and_keeps_the_code(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A public key that is not base64 (in either key spelling) is invalid_argument naming
    the field, and the enrollment code still works afterwards."""
    caplog.set_level(logging.DEBUG)
    code = await new_code(world.client, world.admin, world.ledger)
    for field in ("identityPubkey", "identity_pubkey"):
        for value in BAD_BASE64:
            body = {"enrollmentToken": code, "name": "b64", field: value}
            answer = await post(world.client, p.REGISTER.path, json.dumps(body).encode())
            assert assert_clean(answer, {"invalid_argument"}) == "invalid_argument"
            assert answer.body["message"] == "identityPubkey: must be base64", value
    good = {"enrollmentToken": code, "name": "b64", "identityPubkey": b64(bytes(range(32)))}
    assert (await post(world.client, p.REGISTER.path, json.dumps(good).encode())).status == 200
    world.ledger.assert_not_logged(caplog.records)


async def test_huge_strings_are_refused_without_echo(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Strings far past their limits (but inside 64 KiB) are invalid_argument, and the
    message does not echo them; past 64 KiB the body is resource_exhausted."""
    caplog.set_level(logging.DEBUG)
    huge = "\U0001f680" * 15_000  # 60 000 bytes of UTF-8
    for procedure, body in [
        (p.REGISTER, {"enrollmentToken": huge, "name": "x", "identityPubkey": "AA"}),
        (p.REGISTER, {"enrollmentToken": "c" * 43, "name": huge}),
        (p.BEGIN_AUTH_HANDSHAKE, {"apiKey": huge}),
        (p.LIST_FLEET_NODES, {"pageToken": huge}),
    ]:
        raw = json.dumps(body, ensure_ascii=False).encode()
        assert len(raw) < 64 * 1024
        answer = await post(world.client, procedure.path, raw, credential(world, procedure))
        assert assert_clean(answer, {"invalid_argument"}) == "invalid_argument"
        assert len(answer.raw) < 200
    over = json.dumps({"name": huge * 2}, ensure_ascii=False).encode()
    answer = await post(world.client, p.REGISTER.path, over)
    assert assert_clean(answer, {"resource_exhausted"}) == "resource_exhausted"
    await assert_world_intact(world)
    world.ledger.assert_not_logged(caplog.records)


async def test_duplicate_keys_are_invalid_argument(world: World) -> None:
    """A key given twice (or a field in both spellings) is invalid_argument, not last-wins."""
    session = {"Authorization": f"Bearer {world.node.session_token}"}
    for raw in [
        b'{"sentAt": "2026-11-26T12:00:00Z", "sentAt": "2026-11-26T12:00:00Z"}',
        b'{"sentAt": "2026-11-26T12:00:00Z", "sent_at": "2026-11-26T12:00:00Z"}',
    ]:
        answer = await post(world.client, p.UPLOAD_HEARTBEAT.path, raw, session)
        assert assert_clean(answer, {"invalid_argument"}) == "invalid_argument"
        assert answer.body["message"].endswith("is given twice")


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=14)


@HOSTILE
@given(
    timeout_ms=st.none() | HEADER_TEXT | st.integers(-(10**12), 10**12).map(str),
    version=st.none() | HEADER_TEXT | st.just("1"),
    gzipped=st.booleans(),
    payload=st.binary(max_size=200) | st.just(b'{"sentAt": "2026-11-26T12:00:00Z"}'),
)
@example(timeout_ms="1", version="1", gzipped=True, payload=b'{"sentAt": "2026-11-26T12:00:00Z"}')
@example(timeout_ms="99999999999", version=None, gzipped=False, payload=b"{}")
async def test_hostile_connect_headers_and_gzip_get_a_clean_answer(
    world: World,
    caplog: pytest.LogCaptureFixture,
    timeout_ms: str | None,
    version: str | None,
    gzipped: bool,
    payload: bytes,
) -> None:
    """Any Connect-Timeout-Ms and Connect-Protocol-Version values, and any gzip-compressed
    body, get a success, invalid_argument or deadline_exceeded; never a 500."""
    caplog.set_level(logging.DEBUG)
    headers = credential(world, p.UPLOAD_HEARTBEAT)
    if timeout_ms is not None:
        headers["Connect-Timeout-Ms"] = timeout_ms
    if version is not None:
        headers["Connect-Protocol-Version"] = version
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    body = gzip.compress(payload) if gzipped else payload
    answer = await post(world.client, p.UPLOAD_HEARTBEAT.path, body, headers)
    assert_clean(answer, {"ok", "invalid_argument", "deadline_exceeded"})
    await assert_world_intact(world)
    world.ledger.assert_not_logged(caplog.records)
    caplog.clear()
