"""Simulated nodes over the real HTTP API: enrollment through the admin and node
procedures (what ``fleetctl`` and ``fleetnode enroll`` do), every secret in the ledger."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterable
from typing import Any

import attrs
import httpx

from agent.identity import Identity
from fleetwire import procedures as p
from fleetwire.procedures import Procedure
from tests.e2e.harness import Harness

# One loopback address stands for a whole fleet here, so the gateways of these tests run
# with a per-address auth budget (SPEC 4.8) large enough for it.
FLEET_AUTH_LIMITS = ("--auth-rate", "1000", "--auth-burst", "1000")


@attrs.frozen
class SimNode:
    fleet_node_id: int
    name: str
    identity: Identity
    api_key: str
    session_token: str = ""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def utc_now_text() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def call(
    http: httpx.Client, procedure: Procedure[Any, Any], body: dict[str, Any], token: str = ""
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = http.post(procedure.path, json=body, headers=headers)
    assert response.status_code == 200, f"{procedure.method}: {response.status_code}"
    result: dict[str, Any] = response.json()
    return result


def enroll_nodes(
    harness: Harness,
    base_url: str,
    admin_token: str,
    count: int,
    prefix: str,
    *,
    with_session: bool,
) -> list[SimNode]:
    """``count`` confirmed nodes (code, Register, Confirm; then the handshake if
    ``with_session``), each with a fresh ed25519 identity."""
    nodes = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for index in range(count):
            identity = Identity.generate()
            code = call(http, p.CREATE_ENROLLMENT_CODE, {}, admin_token)["code"]
            harness.secret(code, "enrollment code")
            name = f"{prefix}-{index:03d}"
            registered = call(
                http,
                p.REGISTER,
                {"enrollmentToken": code, "name": name, "identityPubkey": b64(identity.public_key)},
            )
            node_id = int(registered["fleetNodeId"])
            api_key = call(http, p.CONFIRM_FLEET_NODE, {"fleetNodeId": str(node_id)}, admin_token)[
                "apiKey"
            ]
            harness.secret(api_key, f"api key of {name}")
            harness.secret(identity.private_key_hex, f"private key of {name}")
            node = SimNode(node_id, name, identity, api_key)
            if with_session:
                node = attrs.evolve(node, session_token=handshake(http, node))
                harness.secret(node.session_token, f"session token of {name}")
            nodes.append(node)
    return nodes


def handshake(http: httpx.Client, node: SimNode) -> str:
    begin = call(
        http,
        p.BEGIN_AUTH_HANDSHAKE,
        {"apiKey": node.api_key, "identityPubkey": b64(node.identity.public_key)},
    )
    signature = node.identity.sign_challenge(base64.b64decode(begin["challenge"]))
    complete = call(
        http,
        p.COMPLETE_AUTH_HANDSHAKE,
        {"challenge": begin["challenge"], "signature": b64(signature)},
    )
    return str(complete["sessionToken"])


def secrets_in(harness: Harness, texts: Iterable[str]) -> list[str]:
    """What the ledger's secrets are, for each one found in ``texts`` (error messages,
    answers: the text a client or its operator sees)."""
    found = []
    for text in texts:
        found += [what for value, what in harness.secrets.items() if value in text]
    return found
