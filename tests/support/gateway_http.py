"""Helpers for the gateway's HTTP tests: Connect calls and a real enrollment through HTTP."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import attrs
import nacl.signing
from aiohttp.test_utils import TestClient

from fleetwire import procedures as p
from fleetwire.procedures import Procedure
from gateway.commands import create_admin_token
from gateway.principals import Role
from gateway.store import oneshot
from tests.support.gateway_services import Node, sign

JSON_HEADERS = {"Content-Type": "application/json"}


@attrs.frozen
class Reply:
    status: int
    body: dict[str, Any]
    headers: Any


class MonotonicClock:
    """A rate limiter's clock (float seconds), moved by the test instead of sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def call(
    client: TestClient[Any, Any],
    procedure: Procedure[Any, Any] | str,
    body: dict[str, Any] | bytes | None = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    path = procedure if isinstance(procedure, str) else procedure.path
    data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    all_headers = dict(JSON_HEADERS)
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    async with client.post(path, data=data, headers=all_headers) as resp:
        raw = await resp.read()
        is_json = resp.content_type == "application/json" and raw
        return Reply(resp.status, json.loads(raw) if is_json else {}, resp.headers)


async def new_admin_token(database_url: str, org: str = "acme", role: Role = Role.ADMIN) -> str:
    await oneshot.ensure_org(database_url, org)
    return await create_admin_token(database_url, org, role, "test")


async def handshake(
    client: TestClient[Any, Any], key: nacl.signing.SigningKey, api_key: str
) -> str:
    begin = await call(
        client,
        p.BEGIN_AUTH_HANDSHAKE,
        {"apiKey": api_key, "identityPubkey": b64(bytes(key.verify_key))},
    )
    assert begin.status == 200, begin.body
    challenge = base64.b64decode(begin.body["challenge"])
    signature = sign(key, challenge)
    complete = await call(
        client,
        p.COMPLETE_AUTH_HANDSHAKE,
        {"challenge": b64(challenge), "signature": b64(signature)},
    )
    assert complete.status == 200, complete.body
    token: str = complete.body["sessionToken"]
    return token


async def enroll(client: TestClient[Any, Any], admin: str, name: str) -> Node:
    """Create a code, register, confirm and handshake, all over HTTP."""
    code = await call(client, p.CREATE_ENROLLMENT_CODE, {}, token=admin)
    assert code.status == 200, code.body
    key = nacl.signing.SigningKey.generate()
    registered = await call(
        client,
        p.REGISTER,
        {
            "enrollmentToken": code.body["code"],
            "name": name,
            "identityPubkey": b64(bytes(key.verify_key)),
        },
    )
    assert registered.status == 200, registered.body
    node_id = int(registered.body["fleetNodeId"])
    confirmed = await call(client, p.CONFIRM_FLEET_NODE, {"fleetNodeId": str(node_id)}, token=admin)
    assert confirmed.status == 200, confirmed.body
    api_key = confirmed.body["apiKey"]
    return Node(node_id, key, api_key, await handshake(client, key, api_key))


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


async def heartbeat(client: TestClient[Any, Any], token: str) -> Reply:
    return await call(client, p.UPLOAD_HEARTBEAT, {"sentAt": now_rfc3339()}, token=token)
