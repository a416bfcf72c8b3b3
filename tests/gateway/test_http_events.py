"""Events, summary, goodbye and facts through HTTP (SPEC 2.1, 2.2): the JSON forms a client
reads, the roles, and facts the wire refuses."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from fleetwire import procedures as p
from gateway.app import create_app
from gateway.principals import Role
from tests.support.gateway_events import quiet_config
from tests.support.gateway_http import call, enroll, new_admin_token, now_rfc3339

pytestmark = pytest.mark.asyncio

Client = TestClient[Any, Any]
FACTS = {
    "agentVersion": "0.9.0",
    "hostname": "edge-1",
    "os": "Linux 6.1.0 x86_64",
    "bootId": "b1",
    "pythonVersion": "3.11.7",
}


@pytest_asyncio.fixture
async def client(aiohttp_client: Any, database_url: str) -> Client:
    result: Client = await aiohttp_client(create_app(quiet_config(database_url)))
    return result


async def test_events_and_summary_for_admin_and_viewer(client: Client, database_url: str) -> None:
    """Both roles read events and the summary; lastEventId and every count are written even
    when zero; no token is unauthenticated."""
    admin = await new_admin_token(database_url)
    viewer = await new_admin_token(database_url, role=Role.VIEWER)
    empty = await call(client, p.LIST_FLEET_NODE_EVENTS, {}, token=viewer)
    assert empty.status == 200 and empty.body == {"lastEventId": "0"}
    summary = await call(client, p.GET_FLEET_SUMMARY, {}, token=viewer)
    assert summary.body == {
        "awaitingConfirmation": "0", "online": "0", "offline": "0", "neverSeen": "0",
        "stopped": "0",
    }  # fmt: skip

    node = await enroll(client, admin, "edge-1")
    page = await call(
        client, p.LIST_FLEET_NODE_EVENTS, {"fleetNodeId": str(node.fleet_node_id)}, token=admin
    )
    assert page.status == 200, page.body
    assert [e["kind"] for e in page.body["events"]] == [
        "FLEET_NODE_EVENT_KIND_REGISTERED", "FLEET_NODE_EVENT_KIND_CONFIRMED",
    ]  # fmt: skip
    first = page.body["events"][0]
    assert first["fleetNodeId"] == str(node.fleet_node_id)
    assert first["occurredAt"].endswith("Z") and isinstance(first["eventId"], str)
    assert page.body["lastEventId"] == page.body["events"][-1]["eventId"]
    past = await call(
        client, p.LIST_FLEET_NODE_EVENTS, {"afterEventId": page.body["lastEventId"]}, token=viewer
    )
    assert past.body == {"lastEventId": page.body["lastEventId"]}
    unknown = await call(client, p.LIST_FLEET_NODE_EVENTS, {"fleetNodeId": "999"}, token=viewer)
    assert unknown.status == 404 and unknown.body["code"] == "not_found"
    too_big = await call(client, p.LIST_FLEET_NODE_EVENTS, {"pageSize": 1001}, token=viewer)
    assert too_big.body["code"] == "invalid_argument"
    for procedure in (p.LIST_FLEET_NODE_EVENTS, p.GET_FLEET_SUMMARY):
        assert (await call(client, procedure, {})).body["code"] == "unauthenticated"


async def test_goodbye_and_facts_show_in_the_listing(client: Client, database_url: str) -> None:
    """A heartbeat with facts and then a goodbye: the listing shows the facts and
    CONNECTIVITY_STOPPED, and the STOPPED filter finds the node."""
    admin = await new_admin_token(database_url)
    node = await enroll(client, admin, "edge-1")
    beat = {"sentAt": now_rfc3339(), "facts": FACTS}
    assert (await call(client, p.UPLOAD_HEARTBEAT, beat, token=node.session_token)).status == 200
    bye = {"sentAt": now_rfc3339(), "stopping": True}
    assert (await call(client, p.UPLOAD_HEARTBEAT, bye, token=node.session_token)).status == 200
    listed = await call(
        client, p.LIST_FLEET_NODES, {"connectivity": "CONNECTIVITY_STOPPED"}, token=admin
    )
    (shown,) = listed.body["fleetNodes"]
    assert shown["connectivity"] == "CONNECTIVITY_STOPPED"
    assert shown["facts"] == FACTS
    summary = await call(client, p.GET_FLEET_SUMMARY, {}, token=admin)
    assert summary.body["stopped"] == "1"


@pytest.mark.parametrize(
    "bad",
    [
        {"hostname": "h" * 256},
        {"os": "Linux\x00"},
        {"bootId": "\ud800"},
        {"agentVersion": 7},
    ],
    ids=["over-long", "control-character", "lone-surrogate", "not-a-string"],
)
async def test_bad_facts_are_invalid_argument(
    client: Client, database_url: str, bad: dict[str, Any]
) -> None:
    """Facts over 255 characters, with control characters or that are not valid UTF-8 text
    get invalid_argument, and nothing of that heartbeat is stored."""
    admin = await new_admin_token(database_url)
    node = await enroll(client, admin, "edge-1")
    beat = {"sentAt": now_rfc3339(), "facts": {**FACTS, **bad}}
    reply = await call(client, p.UPLOAD_HEARTBEAT, beat, token=node.session_token)
    assert reply.status == 400 and reply.body["code"] == "invalid_argument", reply.body
    listed = await call(client, p.LIST_FLEET_NODES, {}, token=admin)
    assert "facts" not in listed.body["fleetNodes"][0]
    assert "lastSeenAt" not in listed.body["fleetNodes"][0]


async def test_non_utf8_facts_are_invalid_argument(client: Client, database_url: str) -> None:
    """A body whose facts hold bytes that are not UTF-8 gets invalid_argument."""
    admin = await new_admin_token(database_url)
    node = await enroll(client, admin, "edge-1")
    body = b'{"sentAt": "' + now_rfc3339().encode() + b'", "facts": {"hostname": "\xff\xfe"}}'
    reply = await call(client, p.UPLOAD_HEARTBEAT, body, token=node.session_token)
    assert reply.status == 400 and reply.body["code"] == "invalid_argument", reply.body
