"""The whole node life cycle through HTTP against real PostgreSQL, with real ed25519 keys."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import nacl.signing
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from fleetwire import procedures as p
from fleetwire.identity import auth_message
from gateway.app import create_app
from gateway.config import Config
from gateway.principals import Role
from tests.support.gateway_http import b64, call, handshake, heartbeat, new_admin_token

pytestmark = pytest.mark.asyncio

Client = TestClient[Any, Any]


@pytest_asyncio.fixture
async def client(aiohttp_client: Any, database_url: str) -> Client:
    result: Client = await aiohttp_client(create_app(Config(database_url=database_url)))
    return result


async def test_enroll_confirm_heartbeat_list_revoke(client: Client, database_url: str) -> None:
    """Code, Register, Confirm, handshake, heartbeat, list, Revoke; then the node is locked out."""
    admin = await new_admin_token(database_url)

    code = await call(client, p.CREATE_ENROLLMENT_CODE, {"ttlSeconds": 600}, token=admin)
    assert code.status == 200, code.body
    assert len(code.body["code"]) == 43
    assert int(code.body["pendingEnrollmentId"]) > 0

    key = nacl.signing.SigningKey.generate()
    pubkey = bytes(key.verify_key)
    registered = await call(
        client,
        p.REGISTER,
        {"enrollmentToken": code.body["code"], "name": "edge-1", "identityPubkey": b64(pubkey)},
    )
    assert registered.status == 200, registered.body
    assert registered.body["enrollmentStatus"] == "ENROLLMENT_STATUS_PENDING"
    assert registered.body["identityFingerprint"] == hashlib.sha256(pubkey).digest()[:8].hex()
    node_id = registered.body["fleetNodeId"]
    assert isinstance(node_id, str)  # int64 as a decimal string

    reused = await call(
        client,
        p.REGISTER,
        {"enrollmentToken": code.body["code"], "name": "edge-2", "identityPubkey": b64(pubkey)},
    )
    assert reused.body == {"code": "unauthenticated", "message": "invalid enrollment code"}

    listed = await call(client, p.LIST_FLEET_NODES, {}, token=admin)
    (summary,) = listed.body["fleetNodes"]
    assert summary["enrollmentStatus"] == "FLEET_NODE_ENROLLMENT_STATUS_AWAITING_CONFIRMATION"
    assert summary["connectivity"] == "CONNECTIVITY_NEVER_SEEN"
    assert "lastSeenAt" not in summary

    confirmed = await call(client, p.CONFIRM_FLEET_NODE, {"fleetNodeId": node_id}, token=admin)
    assert confirmed.status == 200, confirmed.body
    api_key = confirmed.body["apiKey"]
    assert api_key.startswith("fleet_")

    other_key = nacl.signing.SigningKey.generate()
    mismatch = await call(
        client,
        p.BEGIN_AUTH_HANDSHAKE,
        {"apiKey": api_key, "identityPubkey": b64(bytes(other_key.verify_key))},
    )
    assert mismatch.body == {"code": "unauthenticated", "message": "identity_pubkey mismatch"}

    begin = await call(
        client, p.BEGIN_AUTH_HANDSHAKE, {"apiKey": api_key, "identityPubkey": b64(pubkey)}
    )
    challenge = base64.b64decode(begin.body["challenge"])
    forged = other_key.sign(auth_message(challenge)).signature
    bad_sig = await call(
        client, p.COMPLETE_AUTH_HANDSHAKE, {"challenge": b64(challenge), "signature": b64(forged)}
    )
    assert bad_sig.body["code"] == "unauthenticated"

    session = await handshake(client, key, api_key)
    beat = await heartbeat(client, session)
    assert beat.status == 200, beat.body
    assert beat.body["heartbeatIntervalSeconds"] == 30
    assert beat.body["receivedAt"].endswith("Z")

    listed = await call(client, p.LIST_FLEET_NODES, {}, token=admin)
    (summary,) = listed.body["fleetNodes"]
    assert summary["enrollmentStatus"] == "FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED"
    assert summary["connectivity"] == "CONNECTIVITY_ONLINE"
    assert "lastSeenAt" in summary
    assert "clockSkewMs" in summary

    viewer = await new_admin_token(database_url, role=Role.VIEWER)
    denied = await call(client, p.REVOKE_FLEET_NODE, {"fleetNodeId": node_id}, token=viewer)
    assert (denied.status, denied.body["code"]) == (403, "permission_denied")
    assert (await call(client, p.LIST_FLEET_NODES, {}, token=viewer)).status == 200

    other_org = await new_admin_token(database_url, org="other")
    hidden = await call(client, p.REVOKE_FLEET_NODE, {"fleetNodeId": node_id}, token=other_org)
    assert (hidden.status, hidden.body["code"]) == (404, "not_found")

    revoked = await call(client, p.REVOKE_FLEET_NODE, {"fleetNodeId": node_id}, token=admin)
    assert (revoked.status, revoked.body) == (200, {})

    # The replica that revoked forgets the session at once (others within 1 s, by push).
    # UploadTelemetry authenticates like a heartbeat but spends no rate-limit token.
    telemetry = await call(client, p.UPLOAD_TELEMETRY, {}, token=session)
    assert telemetry.status == 401
    after = await heartbeat(client, session)
    assert (after.status, after.body["code"]) == (401, "unauthenticated")
    again = await call(
        client, p.BEGIN_AUTH_HANDSHAKE, {"apiKey": api_key, "identityPubkey": b64(pubkey)}
    )
    assert again.status == 401
    assert again.body == {"code": "unauthenticated", "message": "invalid api key"}
    listed = await call(client, p.LIST_FLEET_NODES, {}, token=admin)
    assert listed.body.get("fleetNodes", []) == []


async def test_admin_api_needs_a_valid_admin_token(client: Client) -> None:
    """Missing or unknown admin tokens get unauthenticated."""
    assert (await call(client, p.LIST_FLEET_NODES, {})).status == 401
    reply = await call(client, p.LIST_FLEET_NODES, {}, token="fleetadm_00000000_" + "A" * 43)
    assert (reply.status, reply.body["code"]) == (401, "unauthenticated")


async def test_out_of_range_fields_are_invalid_argument(client: Client, database_url: str) -> None:
    """pageSize over 1000 and a ttl outside 60..86400 get invalid_argument naming the field."""
    admin = await new_admin_token(database_url)
    reply = await call(client, p.LIST_FLEET_NODES, {"pageSize": 1001}, token=admin)
    assert reply.status == 400
    assert reply.body["message"].startswith("pageSize:")
    reply = await call(client, p.CREATE_ENROLLMENT_CODE, {"ttlSeconds": "59"}, token=admin)
    assert reply.body["code"] == "invalid_argument"
    assert reply.body["message"].startswith("ttlSeconds:")
