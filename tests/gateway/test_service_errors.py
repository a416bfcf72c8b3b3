"""Every refusal of SPEC 3, with its exact code (domain error) and message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import nacl.signing
import pytest
import pytest_asyncio

from fleetwire import messages as m
from fleetwire import procedures as p
from fleetwire.procedures import Procedure
from gateway import secrets
from gateway.commands import create_admin_token
from gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from gateway.principals import Role
from tests.support.gateway_services import (
    FakeClock,
    Harness,
    Org,
    call_as,
    enroll,
    make_config,
    make_org,
    new_code,
    open_harness,
    register,
    sign,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio

Resp = TypeVar("Resp")

IN_USE = "^fleet node identity or name already in use$"
BAD_CODE = "^invalid enrollment code$"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def harness(database_url: str, clock: FakeClock) -> AsyncIterator[Harness]:
    async with open_harness(make_config(database_url), clock=clock) as h:
        yield h


@pytest_asyncio.fixture
async def org(harness: Harness, database_url: str) -> Org:
    return await make_org(harness.services, database_url)


def failures(h: Harness, reason: str) -> float:
    return float(h.metrics.auth_failures.labels(reason=reason)._value.get())


def new_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


async def test_code_used_twice(harness: Harness, org: Org) -> None:
    """A code that already enrolled a node is refused as an invalid enrollment code."""
    code = await new_code(harness.services, org)
    await register(harness.services, code, "edge-1", new_key())
    with pytest.raises(Unauthenticated, match=BAD_CODE):
        await register(harness.services, code, "edge-2", new_key())
    assert failures(harness, "invalid_enrollment_code") == 1


async def test_expired_unknown_and_malformed_codes(
    harness: Harness, org: Org, clock: FakeClock
) -> None:
    """Expired, unknown and malformed codes all get the same message (no oracle)."""
    code = await new_code(harness.services, org, ttl_seconds=60)
    clock.advance(61)
    for token in (code, secrets.new_enrollment_code(), "x" * 30):
        with pytest.raises(Unauthenticated, match=BAD_CODE):
            await register(harness.services, token, "edge-1", new_key())


async def test_failed_register_keeps_the_code(harness: Harness, org: Org) -> None:
    """A Register refused for a key or name in use leaves its code usable."""
    taken = await enroll(harness.services, org, "edge-1")
    code = await new_code(harness.services, org)
    with pytest.raises(FailedPrecondition, match=IN_USE):
        await register(harness.services, code, "edge-2", taken.key)  # key in use
    with pytest.raises(FailedPrecondition, match=IN_USE):
        await register(harness.services, code, "edge-1", new_key())  # name in use
    ok = await register(harness.services, code, "edge-2", new_key())
    assert ok.fleet_node_id > taken.fleet_node_id


@pytest.mark.parametrize("name", ["edge\x00one", "edge\none", "edge\ud800"])
async def test_unstorable_names_are_invalid_and_keep_the_code(
    harness: Harness, org: Org, name: str
) -> None:
    """A name with control characters or lone surrogates is invalid_argument, and the
    code still works afterwards."""
    code = await new_code(harness.services, org)
    with pytest.raises(InvalidArgument, match="^name: "):
        await register(harness.services, code, name, new_key())
    assert (await register(harness.services, code, "edge-ok", new_key())).fleet_node_id > 0


async def test_identity_unique_across_orgs_name_only_within(
    harness: Harness, org: Org, database_url: str
) -> None:
    """A live key is unique across organizations; a name only within one."""
    other = await make_org(harness.services, database_url, "globex")
    taken = await enroll(harness.services, org, "edge-1")
    with pytest.raises(FailedPrecondition, match=IN_USE):
        await register(harness.services, await new_code(harness.services, other), "x", taken.key)
    same_name = await register(
        harness.services, await new_code(harness.services, other), "edge-1", new_key()
    )
    assert same_name.fleet_node_id > 0


async def test_replayed_and_expired_challenges(
    harness: Harness, org: Org, clock: FakeClock
) -> None:
    """A challenge works once and only within its 30 s."""
    node = await enroll(harness.services, org, "edge-1")
    auth = harness.services.auth
    begin = m.BeginAuthHandshakeRequest(api_key=node.api_key, identity_pubkey=node.pubkey)

    begun = await auth.begin(begin)
    complete = m.CompleteAuthHandshakeRequest(
        challenge=begun.challenge, signature=sign(node.key, begun.challenge)
    )
    await auth.complete(complete)
    with pytest.raises(Unauthenticated, match="^challenge expired or not found$"):
        await auth.complete(complete)

    begun = await auth.begin(begin)
    clock.advance(31)
    with pytest.raises(Unauthenticated, match="^challenge expired or not found$"):
        await auth.complete(
            m.CompleteAuthHandshakeRequest(
                challenge=begun.challenge, signature=sign(node.key, begun.challenge)
            )
        )
    assert failures(harness, "challenge_not_found") == 2


async def test_wrong_pubkey_and_unknown_key(harness: Harness, org: Org) -> None:
    """Begin refuses a key bound to another identity, and keys it does not know."""
    node = await enroll(harness.services, org, "edge-1")
    auth = harness.services.auth
    with pytest.raises(Unauthenticated, match="^identity_pubkey mismatch$"):
        await auth.begin(
            m.BeginAuthHandshakeRequest(
                api_key=node.api_key, identity_pubkey=bytes(new_key().verify_key)
            )
        )
    for api_key in (secrets.new_api_key(), "not-an-api-key-at-all"):
        with pytest.raises(Unauthenticated, match="^invalid api key$"):
            await auth.begin(
                m.BeginAuthHandshakeRequest(api_key=api_key, identity_pubkey=node.pubkey)
            )
    assert failures(harness, "pubkey_mismatch") == 1
    assert failures(harness, "invalid_api_key") == 2


async def test_bad_signature_consumes_the_challenge(harness: Harness, org: Org) -> None:
    """A bad signature is refused, and the challenge cannot be retried."""
    node = await enroll(harness.services, org, "edge-1")
    auth = harness.services.auth
    begun = await auth.begin(
        m.BeginAuthHandshakeRequest(api_key=node.api_key, identity_pubkey=node.pubkey)
    )
    with pytest.raises(Unauthenticated, match="^signature verification failed$"):
        await auth.complete(
            m.CompleteAuthHandshakeRequest(
                challenge=begun.challenge, signature=sign(new_key(), begun.challenge)
            )
        )
    with pytest.raises(Unauthenticated, match="^challenge expired or not found$"):
        await auth.complete(
            m.CompleteAuthHandshakeRequest(
                challenge=begun.challenge, signature=sign(node.key, begun.challenge)
            )
        )
    assert failures(harness, "bad_signature") == 1


async def test_signature_without_domain_separation_is_refused(harness: Harness, org: Org) -> None:
    """A signature over the bare challenge (no context prefix) does not verify."""
    node = await enroll(harness.services, org, "edge-1")
    begun = await harness.services.auth.begin(
        m.BeginAuthHandshakeRequest(api_key=node.api_key, identity_pubkey=node.pubkey)
    )
    with pytest.raises(Unauthenticated, match="^signature verification failed$"):
        await harness.services.auth.complete(
            m.CompleteAuthHandshakeRequest(
                challenge=begun.challenge, signature=node.key.sign(begun.challenge).signature
            )
        )


async def test_confirm_refusals(harness: Harness, org: Org, clock: FakeClock) -> None:
    """Confirm refuses revoked, already confirmed and expired-code nodes."""
    admin = harness.services.admin
    node = await enroll(harness.services, org, "edge-1")
    confirm = m.ConfirmFleetNodeRequest(fleet_node_id=m.Int64(node.fleet_node_id))
    with pytest.raises(FailedPrecondition, match="^fleet node is not awaiting confirmation$"):
        await admin.confirm(org.admin, confirm)
    await admin.revoke(org.admin, m.RevokeFleetNodeRequest(fleet_node_id=confirm.fleet_node_id))
    with pytest.raises(FailedPrecondition, match="^fleet node is revoked$"):
        await admin.confirm(org.admin, confirm)

    code = await new_code(harness.services, org, ttl_seconds=60)
    late = await register(harness.services, code, "edge-2", new_key())
    clock.advance(61)
    with pytest.raises(FailedPrecondition, match="expired before confirmation"):
        await admin.confirm(org.admin, m.ConfirmFleetNodeRequest(fleet_node_id=late.fleet_node_id))


async def test_viewer_may_only_list(harness: Harness, org: Org) -> None:
    """A viewer token lists nodes but cannot mint codes, confirm or revoke (the roles the
    RPC table declares, checked as the adapter does before the service runs)."""

    async def as_viewer(procedure: Procedure[Any, Resp], request: object) -> Resp:
        return await call_as(harness.services, org.viewer, procedure, request)

    registered = await register(
        harness.services, await new_code(harness.services, org), "e", new_key()
    )
    node_id = registered.fleet_node_id
    assert len((await as_viewer(p.LIST_FLEET_NODES, m.ListFleetNodesRequest())).fleet_nodes) == 1
    with pytest.raises(PermissionDenied):
        await as_viewer(p.CONFIRM_FLEET_NODE, m.ConfirmFleetNodeRequest(fleet_node_id=node_id))
    with pytest.raises(PermissionDenied):
        await as_viewer(p.REVOKE_FLEET_NODE, m.RevokeFleetNodeRequest(fleet_node_id=node_id))
    with pytest.raises(PermissionDenied):
        await as_viewer(p.CREATE_ENROLLMENT_CODE, m.CreateEnrollmentCodeRequest())


async def test_other_orgs_node_is_not_found(harness: Harness, org: Org, database_url: str) -> None:
    """Another organization's node id behaves exactly like one that does not exist."""
    admin = harness.services.admin
    other = await make_org(harness.services, database_url, "globex")
    node = await enroll(harness.services, org, "edge-1")
    theirs = m.Int64(node.fleet_node_id)
    for node_id in (theirs, m.Int64(999_999)):
        with pytest.raises(NotFound, match="^fleet node not found$"):
            await admin.confirm(other.admin, m.ConfirmFleetNodeRequest(fleet_node_id=node_id))
        with pytest.raises(NotFound, match="^fleet node not found$"):
            await admin.revoke(other.admin, m.RevokeFleetNodeRequest(fleet_node_id=node_id))
    assert (await admin.list_nodes(other.admin, m.ListFleetNodesRequest())).fleet_nodes == ()
    # ...and the node is untouched.
    assert await harness.services.auth.resolve_session(node.session_token)


async def test_revoking_an_unlisted_node_is_not_found(harness: Harness, org: Org) -> None:
    """A second revoke of one node gets not_found."""
    node = await enroll(harness.services, org, "edge-1")
    revoke = m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(node.fleet_node_id))
    await harness.services.admin.revoke(org.admin, revoke)
    with pytest.raises(NotFound):
        await harness.services.admin.revoke(org.admin, revoke)


async def test_admin_token_refusals(harness: Harness, org: Org, database_url: str) -> None:
    """Unknown, malformed and revoked admin tokens are unauthenticated; missing orgs too."""
    auth = harness.services.auth
    token = await create_admin_token(database_url, "acme", Role.ADMIN, "soon revoked")
    assert (await auth.resolve_admin_token(token)).role is Role.ADMIN
    query(database_url, "UPDATE admin_tokens SET revoked_at = now() WHERE label = 'soon revoked'")
    for candidate in (token, secrets.new_admin_token(), "Bearer nonsense"):
        with pytest.raises(Unauthenticated, match="^invalid admin token$"):
            await auth.resolve_admin_token(candidate)
    with pytest.raises(NotFound):
        await create_admin_token(database_url, "no-such-org", Role.VIEWER, "")


async def test_session_token_refusals(harness: Harness, org: Org) -> None:
    """Unknown or malformed session tokens are unauthenticated."""
    for token in (secrets.new_session_token(), "short", ""):
        with pytest.raises(Unauthenticated, match="^invalid or expired session$"):
            await harness.services.auth.resolve_session(token)
