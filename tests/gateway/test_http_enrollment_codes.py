"""Pre-approved codes and code management over HTTP, in the wire's JSON (SPEC 2.1, 2.2)."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from fleetwire import procedures as p
from gateway.app import create_app
from gateway.config import Config
from gateway.principals import Role
from tests.support.gateway_codes import registration_signature
from tests.support.gateway_http import b64, call, handshake, heartbeat, new_admin_token

pytestmark = pytest.mark.asyncio

Client = TestClient[Any, Any]


@pytest_asyncio.fixture
async def client(aiohttp_client: Any, database_url: str) -> Client:
    result: Client = await aiohttp_client(create_app(Config(database_url=database_url)))
    return result


def register_body(code: str, name: str, key: nacl.signing.SigningKey) -> dict[str, str]:
    return {
        "enrollmentToken": code,
        "name": name,
        "identityPubkey": b64(bytes(key.verify_key)),
        "registrationSignature": b64(registration_signature(key, code)),
    }


async def test_a_pre_approved_code_enrolls_a_node_without_an_operator(
    client: Client, database_url: str
) -> None:
    """CreateEnrollmentCode with preApproved and maxUses, a signed Register answering
    CONFIRMED and an apiKey, a handshake and a heartbeat; the code lists its use."""
    admin = await new_admin_token(database_url)
    created = await call(
        client,
        p.CREATE_ENROLLMENT_CODE,
        {"preApproved": True, "maxUses": 20, "ttlSeconds": 7 * 86400},
        token=admin,
    )
    assert created.status == 200, created.body
    assert created.body["preApproved"] is True and created.body["maxUses"] == 20
    code = created.body["code"]

    key = nacl.signing.SigningKey.generate()
    registered = await call(client, p.REGISTER, register_body(code, "edge-1", key))
    assert registered.status == 200, registered.body
    assert registered.body["enrollmentStatus"] == "ENROLLMENT_STATUS_CONFIRMED"
    api_key = registered.body["apiKey"]
    assert (await heartbeat(client, await handshake(client, key, api_key))).status == 200

    listed = await call(client, p.LIST_ENROLLMENT_CODES, {}, token=admin)
    assert listed.status == 200, listed.body
    (summary,) = listed.body["enrollmentCodes"]
    assert summary == {
        "pendingEnrollmentId": created.body["pendingEnrollmentId"],
        "createdAt": summary["createdAt"],
        "expiresAt": created.body["expiresAt"],
        "preApproved": True,
        "maxUses": 20,
        "uses": 1,
        "state": "ENROLLMENT_CODE_STATE_OPEN",
    }


async def test_register_refusals_speak_the_spec(client: Client, database_url: str) -> None:
    """No signature for a pre-approved code, or a used-up one: unauthenticated with the
    SPEC's messages; a revoked code lists as REVOKED and refuses the next Register."""
    admin = await new_admin_token(database_url)
    created = await call(
        client, p.CREATE_ENROLLMENT_CODE, {"preApproved": True, "maxUses": 1}, token=admin
    )
    code = created.body["code"]
    key = nacl.signing.SigningKey.generate()
    unsigned = register_body(code, "edge-1", key)
    del unsigned["registrationSignature"]
    refused = await call(client, p.REGISTER, unsigned)
    assert (refused.status, refused.body) == (
        401,
        {"code": "unauthenticated", "message": "invalid registration signature"},
    )
    assert (await call(client, p.REGISTER, register_body(code, "edge-1", key))).status == 200
    other = nacl.signing.SigningKey.generate()
    used_up = await call(client, p.REGISTER, register_body(code, "edge-2", other))
    assert used_up.body == {"code": "unauthenticated", "message": "invalid enrollment code"}

    code_id = created.body["pendingEnrollmentId"]
    revoked = await call(
        client, p.REVOKE_ENROLLMENT_CODE, {"pendingEnrollmentId": code_id}, token=admin
    )
    assert (revoked.status, revoked.body) == (200, {})
    listed = await call(client, p.LIST_ENROLLMENT_CODES, {"includeClosed": True}, token=admin)
    assert [c["state"] for c in listed.body["enrollmentCodes"]] == ["ENROLLMENT_CODE_STATE_REVOKED"]
    assert (await call(client, p.LIST_ENROLLMENT_CODES, {}, token=admin)).body == {}


async def test_code_management_checks_roles_and_arguments(
    client: Client, database_url: str
) -> None:
    """A viewer lists but cannot create or revoke; maxUses above 1 without preApproved, a
    confirmation code's TTL above a day and maxUses past 100,000 are invalid_argument."""
    admin = await new_admin_token(database_url)
    viewer = await new_admin_token(database_url, role=Role.VIEWER)
    assert (await call(client, p.LIST_ENROLLMENT_CODES, {}, token=viewer)).status == 200
    for procedure, body in (
        (p.CREATE_ENROLLMENT_CODE, {"preApproved": True}),
        (p.REVOKE_ENROLLMENT_CODE, {"pendingEnrollmentId": "1"}),
    ):
        denied = await call(client, procedure, body, token=viewer)
        assert denied.body["code"] == "permission_denied", denied.body
    for body in (
        {"maxUses": 2},
        {"ttlSeconds": 86401},
        {"preApproved": True, "maxUses": 100_001},
        {"preApproved": True, "ttlSeconds": 30 * 86400 + 1},
        {"preApproved": True, "maxUses": 0},
    ):
        answer = await call(client, p.CREATE_ENROLLMENT_CODE, body, token=admin)
        assert answer.body["code"] == "invalid_argument", body
    missing = await call(
        client, p.REVOKE_ENROLLMENT_CODE, {"pendingEnrollmentId": "999"}, token=admin
    )
    assert missing.body == {"code": "not_found", "message": "enrollment code not found"}
