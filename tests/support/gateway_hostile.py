"""Helpers of the hostile-input tests: a gateway whose rate limits stay out of the way, a
world of two organizations and one enrolled node whose every secret is on a ledger, and the
invariant every answer must satisfy (a clean Connect error, never a 500 or a traceback).

Hypothesis drives the async tests through pytest-asyncio (strict mode supports ``@given``
on a marked coroutine): every example runs on the test's one event loop against the test's
one database and app, so no example pays for a database of its own. Examples are
derandomized (the same on every CI run) and no example database is written to disk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import nacl.signing
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings
from multidict import CIMultiDict

from fleetwire import procedures as p
from fleetwire.codes import Code
from gateway.commands import create_admin_token
from gateway.config import Config
from gateway.principals import Role
from gateway.store import oneshot
from tests.support.gateway_http import b64, call, handshake
from tests.support.gateway_services import Node

Client = TestClient[Any, Any]

HOSTILE = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    # One app and one database serve all examples of a test, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON = "application/json"


def hostile_config(database_url: str) -> Config:
    """Rate limits so high they never answer first: these tests are about validation.
    The heap is not frozen: Hypothesis checks its PRNG's referrers with gc.get_referrers,
    which cannot see frozen objects (gateway.heap)."""
    return Config(
        database_url=database_url,
        auth_rate=1e6,
        auth_burst=10**6,
        node_heartbeat_rate=1e6,
        gc_freeze=False,
    )


@attrs.frozen
class Answer:
    status: int
    content_type: str
    raw: bytes
    body: Any


async def post(
    client: Client,
    path: str,
    data: bytes,
    headers: Mapping[str, str] | CIMultiDict[str] | None = None,
) -> Answer:
    all_headers: CIMultiDict[str] = CIMultiDict({"Content-Type": JSON})
    all_headers.extend(headers or {})
    async with client.post(path, data=data, headers=all_headers) as resp:
        raw = await resp.read()
        body = json.loads(raw) if resp.content_type == JSON and raw else None
        return Answer(resp.status, resp.content_type, raw, body)


def assert_clean(answer: Answer, allowed: Iterable[str]) -> str:
    """The answer is a success or a Connect error whose code is one of ``allowed`` ("ok"
    stands for success), with Connect's HTTP status and a ``{"code","message"}`` body that
    quotes no Python internals. Returns the code."""
    allowed = set(allowed)
    assert answer.status != 500, answer.raw
    assert answer.content_type == JSON, (answer.status, answer.raw)
    assert isinstance(answer.body, dict), answer.raw
    if answer.status == 200:
        assert "ok" in allowed, answer.body
        return "ok"
    assert set(answer.body) == {"code", "message"}, answer.body
    code, message = answer.body["code"], answer.body["message"]
    assert code in allowed, answer.body
    assert Code(code).http_status == answer.status, answer.body
    assert isinstance(message, str) and 0 < len(message) <= 200, answer.body
    for leak in ("Traceback", 'File "', "psycopg2", "Error(", "sys."):
        assert leak not in message, answer.body
    assert isinstance(code, str)
    return code


@attrs.define
class Ledger:
    """Every secret the test minted: none may ever appear in a log record."""

    secrets: list[str] = attrs.Factory(list)

    def add(self, *secrets: str) -> None:
        self.secrets.extend(secrets)

    def assert_not_in(self, answer: Answer) -> None:
        """No error answer quotes a secret (not even the caller's own)."""
        if answer.status != 200:
            for secret in self.secrets:
                assert secret.encode() not in answer.raw, answer.raw

    def assert_not_logged(self, records: list[logging.LogRecord]) -> None:
        assert records, "the capture works: the calls under test left records to check"
        for record in records:
            # __dict__ holds msg, args, extras and exception text: all a handler could print.
            text = record.getMessage() + repr(record.__dict__)
            for secret in self.secrets:
                assert secret not in text, (record.name, record.msg)


@attrs.frozen
class World:
    """Org "acme" (admin, viewer, one confirmed node with a live session) and org "globex"
    (its own admin token and no node)."""

    client: Client
    admin: str
    viewer: str
    other_admin: str
    node: Node
    node_code: str
    ledger: Ledger


async def new_code(client: Client, admin: str, ledger: Ledger) -> str:
    reply = await call(client, p.CREATE_ENROLLMENT_CODE, {}, token=admin)
    assert reply.status == 200, reply.body
    code: str = reply.body["code"]
    ledger.add(code)
    return code


async def enroll_recorded(
    client: Client, admin: str, name: str, ledger: Ledger
) -> tuple[Node, str]:
    """Code, Register, Confirm and a handshake over HTTP; every secret goes on the ledger.
    Returns the node and the (now used) enrollment code."""
    code = await new_code(client, admin, ledger)
    key = nacl.signing.SigningKey.generate()
    body = {"enrollmentToken": code, "name": name, "identityPubkey": b64(bytes(key.verify_key))}
    registered = await call(client, p.REGISTER, body)
    assert registered.status == 200, registered.body
    node_id = int(registered.body["fleetNodeId"])
    confirmed = await call(client, p.CONFIRM_FLEET_NODE, {"fleetNodeId": str(node_id)}, token=admin)
    assert confirmed.status == 200, confirmed.body
    api_key: str = confirmed.body["apiKey"]
    ledger.add(api_key)
    session = await handshake(client, key, api_key)
    ledger.add(session)
    return Node(node_id, key, api_key, session), code


async def make_world(client: Client, database_url: str) -> World:
    ledger = Ledger()
    await oneshot.ensure_org(database_url, "acme")
    await oneshot.ensure_org(database_url, "globex")
    admin = await create_admin_token(database_url, "acme", Role.ADMIN, "ops")
    viewer = await create_admin_token(database_url, "acme", Role.VIEWER, "dash")
    other_admin = await create_admin_token(database_url, "globex", Role.ADMIN, "ops")
    ledger.add(admin, viewer, other_admin)
    node, code = await enroll_recorded(client, admin, "node-a", ledger)
    return World(client, admin, viewer, other_admin, node, code, ledger)


async def listed_names(client: Client, admin: str) -> dict[int, str]:
    """Every listed node of the admin's organization, id -> name (follows pages)."""
    names: dict[int, str] = {}
    token = ""
    while True:
        reply = await call(
            client, p.LIST_FLEET_NODES, {"pageSize": 1000, "pageToken": token}, token=admin
        )
        assert reply.status == 200, reply.body
        for node in reply.body.get("fleetNodes", []):
            names[int(node["fleetNodeId"])] = node["name"]
        token = reply.body.get("nextPageToken", "")
        if not token:
            return names


async def assert_world_intact(world: World) -> None:
    """Nothing was lost: the node still heartbeats and is still listed, confirmed."""
    beat = await call(
        world.client,
        p.UPLOAD_HEARTBEAT,
        {"sentAt": "2026-11-26T12:00:00Z"},
        token=world.node.session_token,
    )
    assert beat.status == 200, beat.body
    reply = await call(world.client, p.LIST_FLEET_NODES, {}, token=world.admin)
    assert reply.status == 200, reply.body
    [listed] = [n for n in reply.body["fleetNodes"] if n["name"] == "node-a"]
    assert int(listed["fleetNodeId"]) == world.node.fleet_node_id
    assert listed["enrollmentStatus"] == "FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED"
