"""Managing enrollment codes: ListEnrollmentCodes and RevokeEnrollmentCode through the
services against real PostgreSQL (SPEC 2.2, 3.9)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nacl.signing
import pytest
import pytest_asyncio

from fleetwire import codec
from fleetwire import messages as m
from fleetwire import procedures as p
from gateway.errors import FailedPrecondition, NotFound, PermissionDenied, Unauthenticated
from tests.support.gateway_codes import live_nodes, new_pre_approved_code, register_signed
from tests.support.gateway_services import (
    FakeClock,
    Harness,
    Org,
    call_as,
    handshake,
    heartbeat_request,
    make_config,
    make_org,
    new_code,
    open_harness,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio

ST = m.EnrollmentCodeState


@pytest_asyncio.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def harness(database_url: str, clock: FakeClock) -> AsyncIterator[Harness]:
    async with open_harness(make_config(database_url), clock=clock) as h:
        yield h


@pytest_asyncio.fixture
async def org(harness: Harness, database_url: str) -> Org:
    return await make_org(harness.services, database_url)


def new_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


async def listing(
    harness: Harness, org: Org, include_closed: bool = False
) -> dict[int, m.EnrollmentCodeSummary]:
    reply = await call_as(
        harness.services,
        org.viewer,
        p.LIST_ENROLLMENT_CODES,
        m.ListEnrollmentCodesRequest(include_closed=include_closed),
    )
    return {int(code.pending_enrollment_id): code for code in reply.enrollment_codes}


async def test_codes_are_listed_with_uses_and_state_never_the_code(
    harness: Harness, org: Org, clock: FakeClock
) -> None:
    """Open, used-up, expired and revoked codes show their uses and state, newest first;
    without includeClosed only the open ones; the code itself never appears."""
    rt = harness.services
    used = await rt.codes.create_code(org.admin, m.CreateEnrollmentCodeRequest())
    await register_signed(rt, used.code, "edge-1", new_key())
    short = await new_pre_approved_code(rt, org, uses=5, ttl_seconds=60)
    await register_signed(rt, short.code, "edge-2", new_key())
    revoked = await new_pre_approved_code(rt, org, uses=2)
    await rt.codes.revoke_code(
        org.admin,
        m.RevokeEnrollmentCodeRequest(pending_enrollment_id=revoked.pending_enrollment_id),
    )
    clock.advance(120)
    fresh = await new_pre_approved_code(rt, org, uses=3)
    await register_signed(rt, fresh.code, "edge-3", new_key())

    every = await listing(harness, org, include_closed=True)
    ids = [int(c.pending_enrollment_id) for c in (used, short, revoked, fresh)]
    assert list(every) == sorted(ids, reverse=True)
    states = {i: (c.state, c.uses, c.max_uses, c.pre_approved) for i, c in every.items()}
    assert states == {
        ids[0]: (ST.ENROLLMENT_CODE_STATE_USED_UP, 1, 1, False),
        ids[1]: (ST.ENROLLMENT_CODE_STATE_EXPIRED, 1, 5, True),
        ids[2]: (ST.ENROLLMENT_CODE_STATE_REVOKED, 0, 2, True),
        ids[3]: (ST.ENROLLMENT_CODE_STATE_OPEN, 1, 3, True),
    }
    assert every[ids[3]].created_at == clock.now and every[ids[3]].expires_at is not None
    assert list(await listing(harness, org)) == [ids[3]]
    reply = await rt.codes.list_codes(org.admin, m.ListEnrollmentCodesRequest(include_closed=True))
    wire = codec.encode(reply).decode()
    for code in (used, short, revoked, fresh):
        assert code.code not in wire


async def test_codes_are_paged_and_scoped_to_the_organization(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Pages of two follow each other without gaps or repeats; another organization sees
    none of them."""
    rt = harness.services
    made = [int((await new_pre_approved_code(rt, org, uses=2)).pending_enrollment_id)]
    for _ in range(4):
        made.append(int((await new_pre_approved_code(rt, org)).pending_enrollment_id))
    seen: list[int] = []
    token = ""
    for _ in range(5):
        reply = await rt.codes.list_codes(
            org.viewer, m.ListEnrollmentCodesRequest(page_size=m.Int32(2), page_token=token)
        )
        seen += [int(c.pending_enrollment_id) for c in reply.enrollment_codes]
        token = reply.next_page_token
        if not token:
            break
    assert seen == sorted(made, reverse=True)
    other = await make_org(rt, database_url, "globex")
    assert await listing(harness, other, include_closed=True) == {}


async def test_viewers_list_but_cannot_create_or_revoke(harness: Harness, org: Org) -> None:
    """A viewer token may list codes; creating and revoking are permission_denied."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org)
    assert list(await listing(harness, org)) == [int(code.pending_enrollment_id)]
    with pytest.raises(PermissionDenied):
        await call_as(
            rt,
            org.viewer,
            p.CREATE_ENROLLMENT_CODE,
            m.CreateEnrollmentCodeRequest(pre_approved=True, max_uses=m.Int32(5)),
        )
    with pytest.raises(PermissionDenied):
        await call_as(
            rt,
            org.viewer,
            p.REVOKE_ENROLLMENT_CODE,
            m.RevokeEnrollmentCodeRequest(pending_enrollment_id=code.pending_enrollment_id),
        )


async def test_revoking_an_unknown_or_foreign_code_is_not_found(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Another organization's code id behaves exactly like one that does not exist."""
    rt = harness.services
    other = await make_org(rt, database_url, "globex")
    theirs = await new_pre_approved_code(rt, other)
    for code_id in (theirs.pending_enrollment_id, m.Int64(10**12)):
        with pytest.raises(NotFound, match="^enrollment code not found$"):
            await rt.codes.revoke_code(
                org.admin, m.RevokeEnrollmentCodeRequest(pending_enrollment_id=code_id)
            )
    await register_signed(rt, theirs.code, "edge-1", new_key())  # still works for them


async def test_a_revoked_code_stops_at_once_retries_included(
    harness: Harness, org: Org, database_url: str
) -> None:
    """After RevokeEnrollmentCode neither a new Register nor a retry of an earlier one
    works; the confirmed node it registered keeps its session; revoking again is fine."""
    rt = harness.services
    code = await new_pre_approved_code(rt, org, uses=5)
    key = new_key()
    registered = await register_signed(rt, code.code, "edge-1", key)
    token = await handshake(rt, registered.api_key, key)
    revoke = m.RevokeEnrollmentCodeRequest(pending_enrollment_id=code.pending_enrollment_id)
    await rt.codes.revoke_code(org.admin, revoke)
    for name, signer in (("edge-2", new_key()), ("edge-1", key)):
        with pytest.raises(Unauthenticated, match="^invalid enrollment code$"):
            await register_signed(rt, code.code, name, signer)
    principal = await rt.auth.resolve_session(token)
    await rt.heartbeats.record(principal, heartbeat_request())
    await rt.codes.revoke_code(org.admin, revoke)  # idempotent
    assert live_nodes(database_url) == 1


async def test_revoking_a_confirmation_code_removes_its_awaiting_node(
    harness: Harness, org: Org, database_url: str
) -> None:
    """The node a revoked code registered that still awaits confirmation is soft-deleted
    with it (no longer listed, not confirmable); a confirmed one is unaffected."""
    rt = harness.services
    awaiting_code = await new_code(rt, org)
    awaiting = await register_signed(rt, awaiting_code, "edge-1", new_key())
    confirmed_code = await new_code(rt, org)
    confirmed = await register_signed(rt, confirmed_code, "edge-2", new_key())
    await rt.admin.confirm(
        org.admin, m.ConfirmFleetNodeRequest(fleet_node_id=confirmed.fleet_node_id)
    )
    by_code = {
        int(code.pending_enrollment_id): code
        for code in (await listing(harness, org, include_closed=True)).values()
    }
    for code_id in by_code:
        await rt.codes.revoke_code(
            org.admin, m.RevokeEnrollmentCodeRequest(pending_enrollment_id=m.Int64(code_id))
        )
    listed = (await rt.admin.list_nodes(org.admin, m.ListFleetNodesRequest())).fleet_nodes
    assert [n.fleet_node_id for n in listed] == [confirmed.fleet_node_id]
    rows = query(
        database_url,
        "SELECT status FROM fleet_nodes WHERE id = %s",
        (int(awaiting.fleet_node_id),),
    )
    assert rows == [("REVOKED",)]
    with pytest.raises(FailedPrecondition, match="revoked"):
        await rt.admin.confirm(
            org.admin, m.ConfirmFleetNodeRequest(fleet_node_id=awaiting.fleet_node_id)
        )
    states = {c.state for c in (await listing(harness, org, include_closed=True)).values()}
    assert states == {ST.ENROLLMENT_CODE_STATE_REVOKED}
