"""The whole node lifecycle through the services, against real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator

import nacl.signing
import pytest
import pytest_asyncio

from fleetwire import messages as m
from fleetwire.identity import fingerprint
from gateway import secrets
from gateway.errors import NotFound, Unauthenticated
from tests.support.gateway_services import (
    FakeClock,
    Harness,
    Org,
    enroll,
    handshake,
    heartbeat_request,
    make_config,
    make_org,
    new_code,
    open_harness,
    register,
    sign,
)

pytestmark = pytest.mark.asyncio

S = m.FleetNodeEnrollmentStatus
C = m.Connectivity


@pytest_asyncio.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with open_harness(make_config(database_url)) as h:
        yield h


@pytest_asyncio.fixture
async def org(harness: Harness, database_url: str) -> Org:
    return await make_org(harness.services, database_url)


async def test_enroll_confirm_handshake_heartbeat_revoke(harness: Harness, org: Org) -> None:
    """A node goes from code to heartbeats to revoked, and is locked out afterwards."""
    rt = harness.services
    key = nacl.signing.SigningKey.generate()
    pubkey = bytes(key.verify_key)

    code = await new_code(rt, org)
    assert len(code) == 43
    registered = await register(rt, code, "edge-1", key)
    assert registered.enrollment_status is m.EnrollmentStatus.ENROLLMENT_STATUS_PENDING
    assert registered.identity_fingerprint == fingerprint(pubkey)
    assert len(registered.identity_fingerprint) == 16

    listed = await rt.admin.list_nodes(org.viewer, m.ListFleetNodesRequest())
    (node,) = listed.fleet_nodes
    assert node.fleet_node_id == registered.fleet_node_id
    assert node.name == "edge-1"
    assert node.enrollment_status is S.FLEET_NODE_ENROLLMENT_STATUS_AWAITING_CONFIRMATION
    assert node.identity_fingerprint == registered.identity_fingerprint
    assert node.last_seen_at is None
    assert node.clock_skew_ms is None
    assert node.connectivity is C.CONNECTIVITY_NEVER_SEEN

    confirmed = await rt.admin.confirm(
        org.admin, m.ConfirmFleetNodeRequest(fleet_node_id=registered.fleet_node_id)
    )
    assert secrets.looks_like_api_key(confirmed.api_key)

    begun = await rt.auth.begin(
        m.BeginAuthHandshakeRequest(api_key=confirmed.api_key, identity_pubkey=pubkey)
    )
    assert len(begun.challenge) == 32
    done = await rt.auth.complete(
        m.CompleteAuthHandshakeRequest(
            challenge=begun.challenge, signature=sign(key, begun.challenge)
        )
    )
    assert len(done.session_token) == 43
    assert done.expires_at is not None

    principal = await rt.auth.resolve_session(done.session_token)
    assert principal.fleet_node_id == registered.fleet_node_id
    assert principal.org_id == org.org_id

    sent_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    beat = await rt.heartbeats.record(principal, heartbeat_request(sent_at))
    assert beat.heartbeat_interval_seconds == 30
    assert beat.received_at is not None

    listed = await rt.admin.list_nodes(org.admin, m.ListFleetNodesRequest())
    (node,) = listed.fleet_nodes
    assert node.enrollment_status is S.FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED
    assert node.last_seen_at == beat.received_at
    assert node.connectivity is C.CONNECTIVITY_ONLINE
    assert node.clock_skew_ms is not None and 4000 <= node.clock_skew_ms <= 5000

    await rt.admin.revoke(
        org.admin, m.RevokeFleetNodeRequest(fleet_node_id=registered.fleet_node_id)
    )
    assert (await rt.admin.list_nodes(org.admin, m.ListFleetNodesRequest())).fleet_nodes == ()
    with pytest.raises(Unauthenticated, match="^invalid or expired session$"):
        await rt.auth.resolve_session(done.session_token)
    with pytest.raises(Unauthenticated, match="^invalid api key$"):
        await rt.auth.begin(
            m.BeginAuthHandshakeRequest(api_key=confirmed.api_key, identity_pubkey=pubkey)
        )
    with pytest.raises(NotFound):
        await rt.heartbeats.record(principal, heartbeat_request())
    assert harness.metrics.db_pool_in_use._value.get() == 0  # every connection went back


async def test_revoke_frees_key_and_name_for_reenrollment(harness: Harness, org: Org) -> None:
    """After a revoke the same identity key and name can enroll again."""
    rt = harness.services
    node = await enroll(rt, org, "edge-1")
    await rt.admin.revoke(org.admin, m.RevokeFleetNodeRequest(fleet_node_id=node.fleet_node_id))
    again = await register(rt, await new_code(rt, org), "edge-1", node.key)
    assert again.fleet_node_id != node.fleet_node_id
    (listed,) = (await rt.admin.list_nodes(org.admin, m.ListFleetNodesRequest())).fleet_nodes
    assert listed.fleet_node_id == again.fleet_node_id


async def test_session_cache_hit_after_first_resolution(harness: Harness, org: Org) -> None:
    """A second resolution of one session token is answered from the cache."""
    rt = harness.services
    async with asyncio.timeout(10):
        await rt.listener.connects.wait_for(1)
    node = await enroll(rt, org, "edge-1")
    first = await rt.auth.resolve_session(node.session_token)
    second = await rt.auth.resolve_session(node.session_token)
    assert first == second
    cache = harness.metrics.session_cache
    assert cache.labels(result="miss")._value.get() == 1
    assert cache.labels(result="hit")._value.get() == 1


async def test_new_handshake_ends_previous_session(harness: Harness, org: Org) -> None:
    """A second handshake ends the node's previous session token."""
    rt = harness.services
    async with asyncio.timeout(10):
        await rt.listener.connects.wait_for(1)
    node = await enroll(rt, org, "edge-1")
    await rt.auth.resolve_session(node.session_token)  # now cached
    newer = await handshake(rt, node.api_key, node.key)
    assert (await rt.auth.resolve_session(newer)).fleet_node_id == node.fleet_node_id
    with pytest.raises(Unauthenticated):
        await rt.auth.resolve_session(node.session_token)


async def test_cached_session_never_outlives_its_expiry(database_url: str) -> None:
    """A cached session stops resolving once its expiry passes on the gateway clock."""
    clock = FakeClock()
    async with open_harness(make_config(database_url, session_ttl_seconds=60.0), clock=clock) as h:
        async with asyncio.timeout(10):
            await h.services.listener.connects.wait_for(1)
        org = await make_org(h.services, database_url)
        node = await enroll(h.services, org, "edge-1")
        await h.services.auth.resolve_session(node.session_token)
        await h.services.auth.resolve_session(node.session_token)
        clock.advance(61)
        with pytest.raises(Unauthenticated):
            await h.services.auth.resolve_session(node.session_token)
