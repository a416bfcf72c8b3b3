"""Pre-approved codes, the registration signature and retry-safe Register, through the
services against real PostgreSQL (SPEC 3.2, 3.8)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nacl.signing
import pytest
import pytest_asyncio

from fleetwire import messages as m
from gateway import secrets
from gateway.errors import FailedPrecondition, Unauthenticated
from gateway.store.housekeeping import Housekeeping
from tests.support.gateway_codes import (
    live_nodes,
    new_pre_approved_code,
    register_signed,
    registration_signature,
    uses_of,
)
from tests.support.gateway_services import (
    FakeClock,
    Harness,
    Org,
    handshake,
    make_config,
    make_org,
    new_code,
    open_harness,
    open_test_store,
    register,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio

E = m.EnrollmentStatus
S = m.FleetNodeEnrollmentStatus
DAY = 86400


@pytest_asyncio.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def harness(database_url: str, clock: FakeClock) -> AsyncIterator[Harness]:
    async with open_harness(make_config(database_url, db_pool_size=10), clock=clock) as h:
        yield h


@pytest_asyncio.fixture
async def org(harness: Harness, database_url: str) -> Org:
    return await make_org(harness.services, database_url)


def new_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


async def test_pre_approved_register_confirms_the_node_and_hands_out_its_api_key(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Register with a pre-approved code answers CONFIRMED and an api key that opens a
    session at once, with no operator step."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=3, ttl_seconds=30 * DAY)
    assert code.pre_approved and code.max_uses == 3
    key = new_key()
    registered = await register_signed(rt, code.code, "edge-1", key)
    assert registered.enrollment_status is E.ENROLLMENT_STATUS_CONFIRMED
    assert secrets.looks_like_api_key(registered.api_key)
    (node,) = (await rt.admin.list_nodes(org.viewer, m.ListFleetNodesRequest())).fleet_nodes
    assert node.fleet_node_id == registered.fleet_node_id
    assert node.enrollment_status is S.FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED
    token = await handshake(rt, registered.api_key, key)
    principal = await rt.auth.resolve_session(token)
    assert principal.fleet_node_id == registered.fleet_node_id
    assert uses_of(database_url, code.pending_enrollment_id) == 1


async def test_register_records_its_events_once_and_a_retry_records_none(
    harness: Harness, org: Org
) -> None:
    """A pre-approved Register shows REGISTERED then CONFIRMED in the node's events, a
    confirmation code's only REGISTERED, and a retried Register adds no event."""
    rt = harness.services
    key = new_key()
    pre = await new_pre_approved_code(rt, org, uses=2)
    first = await register_signed(rt, pre.code, "edge-1", key)
    await register_signed(rt, pre.code, "edge-1", key)  # the retry of a lost response
    waiting = await register_signed(rt, await new_code(rt, org), "edge-2", new_key())

    async def kinds(node_id: int) -> list[m.FleetNodeEventKind]:
        request = m.ListFleetNodeEventsRequest(fleet_node_id=m.Int64(node_id))
        return [e.kind for e in (await rt.events.list_events(org.viewer, request)).events]

    K = m.FleetNodeEventKind
    assert await kinds(first.fleet_node_id) == [
        K.FLEET_NODE_EVENT_KIND_REGISTERED,
        K.FLEET_NODE_EVENT_KIND_CONFIRMED,
    ]
    assert await kinds(waiting.fleet_node_id) == [K.FLEET_NODE_EVENT_KIND_REGISTERED]


async def test_a_confirmation_code_still_registers_one_node_awaiting_confirmation(
    harness: Harness, org: Org
) -> None:
    """A signed Register with a confirmation code answers PENDING without an api key."""
    code = await new_code(harness.services, org)
    registered = await register_signed(harness.services, code, "edge-1", new_key())
    assert registered.enrollment_status is E.ENROLLMENT_STATUS_PENDING
    assert registered.api_key == ""


@pytest.mark.parametrize("wrong", ["missing", "other code", "other key", "garbage"])
async def test_a_missing_or_wrong_signature_is_refused_and_consumes_no_use(
    harness: Harness, org: Org, database_url: str, wrong: str
) -> None:
    """A pre-approved code needs the key's signature over this very code: missing, over
    another code, by another key or garbage is "invalid registration signature", no use."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=1)
    key = new_key()
    signature = {
        "missing": b"",
        "other code": registration_signature(key, "x" * 43),
        "other key": registration_signature(new_key(), code.code),
        "garbage": bytes(64),
    }[wrong]
    with pytest.raises(Unauthenticated, match="^invalid registration signature$"):
        await register_signed(rt, code.code, "edge-1", key, signature=signature)
    assert uses_of(database_url, code.pending_enrollment_id) == 0
    assert live_nodes(database_url) == 0
    registered = await register_signed(rt, code.code, "edge-1", key)
    assert registered.enrollment_status is E.ENROLLMENT_STATUS_CONFIRMED


async def test_a_wrong_signature_is_refused_for_a_confirmation_code_too(
    harness: Harness, org: Org, database_url: str
) -> None:
    """The signature is verified whenever present, whatever the code."""
    code = await new_code(harness.services, org)
    with pytest.raises(Unauthenticated, match="^invalid registration signature$"):
        await register_signed(harness.services, code, "edge-1", new_key(), signature=bytes(64))
    assert live_nodes(database_url) == 0
    await register(harness.services, code, "edge-1", new_key())  # the code still works


async def test_fifty_concurrent_registers_never_exceed_max_uses(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Fifty Registers at once with a code of ten uses make exactly ten nodes; the other
    forty are "invalid enrollment code"."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=10)
    results = await asyncio.gather(
        *(register_signed(rt, code.code, f"edge-{i}", new_key()) for i in range(50)),
        return_exceptions=True,
    )
    registered = [r for r in results if isinstance(r, m.RegisterResponse)]
    refused = [r for r in results if isinstance(r, Unauthenticated)]
    assert len(registered) == 10 and len(refused) == 40, results
    assert {r.message for r in refused} == {"invalid enrollment code"}
    assert len({r.fleet_node_id for r in registered}) == 10
    assert uses_of(database_url, code.pending_enrollment_id) == 10
    assert live_nodes(database_url) == 10


async def test_retries_racing_with_the_register_they_repeat_get_the_same_node(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Ten identical signed Registers at once (a client retrying while its first request
    is still served) all answer one node and spend one use; exactly one of the api keys
    they handed out is live, and it opens a session."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=5)
    key = new_key()
    results = await asyncio.gather(
        *(register_signed(rt, code.code, "edge-1", key) for _ in range(10))
    )
    assert len({r.fleet_node_id for r in results}) == 1
    assert uses_of(database_url, code.pending_enrollment_id) == 1
    working = []
    for result in results:
        try:
            await handshake(rt, result.api_key, key)
        except Unauthenticated:
            continue
        working.append(result.api_key)
    assert len(working) == 1


async def test_a_register_that_fails_consumes_no_use(
    harness: Harness, org: Org, database_url: str
) -> None:
    """A name or key already in use is failed_precondition and leaves the use for the
    next node."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=2)
    first_key = new_key()
    await register_signed(rt, code.code, "edge-1", first_key)
    with pytest.raises(FailedPrecondition, match="already in use"):
        await register_signed(rt, code.code, "edge-1", new_key())  # name taken
    other = await new_pre_approved_code(rt, org, uses=1)
    with pytest.raises(FailedPrecondition, match="already in use"):
        await register_signed(rt, other.code, "edge-9", first_key)  # key taken elsewhere
    assert uses_of(database_url, code.pending_enrollment_id) == 1
    assert uses_of(database_url, other.pending_enrollment_id) == 0
    await register_signed(rt, code.code, "edge-2", new_key())
    assert uses_of(database_url, code.pending_enrollment_id) == 2


async def test_a_repeated_register_returns_the_same_node_with_a_fresh_key(
    harness: Harness, org: Org, database_url: str
) -> None:
    """The same code and key again answer the same node and a new api key; the previous
    key and its session stop working, and no use is consumed."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=5)
    key = new_key()
    first = await register_signed(rt, code.code, "edge-1", key)
    old_session = await handshake(rt, first.api_key, key)

    again = await register_signed(rt, code.code, "edge-1", key)
    assert again.fleet_node_id == first.fleet_node_id
    assert again.enrollment_status is E.ENROLLMENT_STATUS_CONFIRMED
    assert again.api_key != first.api_key
    assert uses_of(database_url, code.pending_enrollment_id) == 1
    with pytest.raises(Unauthenticated, match="^invalid or expired session$"):
        await rt.auth.resolve_session(old_session)
    with pytest.raises(Unauthenticated, match="^invalid api key$"):
        await handshake(rt, first.api_key, key)
    await rt.auth.resolve_session(await handshake(rt, again.api_key, key))
    revoked = query(
        database_url,
        "SELECT count(*) FROM api_keys WHERE fleet_node_id = %s AND revoked_at IS NOT NULL",
        (int(first.fleet_node_id),),
    )
    assert revoked == [(1,)]


async def test_a_retry_works_after_the_code_expired_or_was_used_up_within_24h(
    harness: Harness, org: Org, clock: FakeClock, database_url: str
) -> None:
    """Within 24 h of the first Register a retry answers the same node even though the
    code is used up, expired and swept; after 24 h it is a new Register, and refused."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=1, ttl_seconds=60)
    key = new_key()
    first = await register_signed(rt, code.code, "edge-1", key)
    with pytest.raises(Unauthenticated, match="^invalid enrollment code$"):
        await register_signed(rt, code.code, "edge-2", new_key())  # used up

    clock.advance(3600)  # expired
    async with open_test_store(database_url) as store:
        await Housekeeping(store.database).sweep(clock())
    again = await register_signed(rt, code.code, "edge-1", key)
    assert again.fleet_node_id == first.fleet_node_id and again.api_key

    clock.advance(DAY)
    with pytest.raises(Unauthenticated, match="^invalid enrollment code$"):
        await register_signed(rt, code.code, "edge-1", key)
    assert uses_of(database_url, code.pending_enrollment_id) == 1


async def test_only_the_same_key_signed_makes_a_retry(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Another key with a used-up code, or the same key without a signature, is refused:
    only the holder of the private key can repeat a Register."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=1)
    key = new_key()
    await register_signed(rt, code.code, "edge-1", key)
    with pytest.raises(Unauthenticated, match="^invalid enrollment code$"):
        await register_signed(rt, code.code, "edge-1", new_key())
    with pytest.raises(Unauthenticated):
        await register(rt, code.code, "edge-1", key)
    assert uses_of(database_url, code.pending_enrollment_id) == 1


async def test_a_revoked_node_is_not_retried_but_registers_anew(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Once its node is revoked, the same code and key make a new node (a use) while the
    code has uses left."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=2)
    key = new_key()
    first = await register_signed(rt, code.code, "edge-1", key)
    await rt.admin.revoke(org.admin, m.RevokeFleetNodeRequest(fleet_node_id=first.fleet_node_id))
    again = await register_signed(rt, code.code, "edge-1", key)
    assert again.fleet_node_id != first.fleet_node_id
    assert uses_of(database_url, code.pending_enrollment_id) == 2


async def test_a_confirmation_code_retry_returns_the_same_awaiting_node(
    harness: Harness, org: Org
) -> None:
    """A signed retry with a confirmation code answers the same node, still PENDING,
    without an api key; unsigned it is refused as a used code."""
    rt = harness.services
    code = await new_code(rt, org)
    key = new_key()
    first = await register_signed(rt, code, "edge-1", key)
    again = await register_signed(rt, code, "edge-1", key)
    assert again.fleet_node_id == first.fleet_node_id
    assert again.enrollment_status is E.ENROLLMENT_STATUS_PENDING and again.api_key == ""
    with pytest.raises(Unauthenticated, match="^invalid enrollment code$"):
        await register(rt, code, "edge-1", key)
    (node,) = (await rt.admin.list_nodes(org.admin, m.ListFleetNodesRequest())).fleet_nodes
    assert node.enrollment_status is S.FLEET_NODE_ENROLLMENT_STATUS_AWAITING_CONFIRMATION
    confirmed = await rt.admin.confirm(
        org.admin, m.ConfirmFleetNodeRequest(fleet_node_id=first.fleet_node_id)
    )
    await handshake(rt, confirmed.api_key, key)


async def test_create_code_answers_what_it_made(harness: Harness, org: Org) -> None:
    """CreateEnrollmentCode fills preApproved and maxUses, 1 for a confirmation code."""
    plain = await harness.services.codes.create_code(org.admin, m.CreateEnrollmentCodeRequest())
    assert (plain.pre_approved, plain.max_uses) == (False, 1)
    wide = await new_pre_approved_code(harness.services, org, uses=100_000, ttl_seconds=30 * DAY)
    assert (wide.pre_approved, wide.max_uses) == (True, 100_000)
    assert wide.expires_at is not None and plain.expires_at is not None
    assert (wide.expires_at - plain.expires_at).total_seconds() == 30 * DAY - 3600
