"""Races that the database must settle: one code, one challenge, one session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nacl.signing
import pytest
import pytest_asyncio

from fleetwire import messages as m
from gateway.errors import Unauthenticated
from tests.support.gateway_services import (
    Harness,
    Org,
    enroll,
    handshake,
    make_config,
    make_org,
    new_code,
    open_harness,
    register,
    sign,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with open_harness(make_config(database_url, db_pool_size=10)) as h:
        yield h


@pytest_asyncio.fixture
async def org(harness: Harness, database_url: str) -> Org:
    return await make_org(harness.services, database_url)


async def test_ten_registers_with_one_code_make_one_node(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Ten concurrent Registers with one code produce exactly one node."""
    code = await new_code(harness.services, org)
    results = await asyncio.gather(
        *(
            register(harness.services, code, f"edge-{i}", nacl.signing.SigningKey.generate())
            for i in range(10)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, m.RegisterResponse)]
    losers = [r for r in results if isinstance(r, Unauthenticated)]
    assert len(winners) == 1
    assert len(losers) == 9
    assert all(e.message == "invalid enrollment code" for e in losers)
    assert query(database_url, "SELECT count(*) FROM fleet_nodes") == [(1,)]
    assert query(database_url, "SELECT status, fleet_node_id FROM pending_enrollments") == [
        ("BOUND", winners[0].fleet_node_id)
    ]


async def test_ten_begins_leave_one_live_challenge(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Ten concurrent Begins leave one live challenge: the others no longer complete."""
    node = await enroll(harness.services, org, "edge-1")
    begin = m.BeginAuthHandshakeRequest(api_key=node.api_key, identity_pubkey=node.pubkey)
    begun = await asyncio.gather(*(harness.services.auth.begin(begin) for _ in range(10)))
    assert len({b.challenge for b in begun}) == 10
    assert query(
        database_url,
        "SELECT count(*) FROM auth_challenges WHERE fleet_node_id = %s",
        (node.fleet_node_id,),
    ) == [(1,)]
    outcomes = await asyncio.gather(
        *(
            harness.services.auth.complete(
                m.CompleteAuthHandshakeRequest(
                    challenge=b.challenge, signature=sign(node.key, b.challenge)
                )
            )
            for b in begun
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(o, m.CompleteAuthHandshakeResponse) for o in outcomes) == 1
    assert sum(isinstance(o, Unauthenticated) for o in outcomes) == 9


async def test_five_completes_leave_one_live_session(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Five concurrent Completes of one challenge yield exactly one live session."""
    node = await enroll(harness.services, org, "edge-1")
    begun = await harness.services.auth.begin(
        m.BeginAuthHandshakeRequest(api_key=node.api_key, identity_pubkey=node.pubkey)
    )
    complete = m.CompleteAuthHandshakeRequest(
        challenge=begun.challenge, signature=sign(node.key, begun.challenge)
    )
    outcomes = await asyncio.gather(
        *(harness.services.auth.complete(complete) for _ in range(5)), return_exceptions=True
    )
    sessions = [o for o in outcomes if isinstance(o, m.CompleteAuthHandshakeResponse)]
    assert len(sessions) == 1
    assert query(
        database_url,
        "SELECT count(*) FROM sessions WHERE fleet_node_id = %s",
        (node.fleet_node_id,),
    ) == [(1,)]
    # The enrollment's session was ended by the new one.
    principal = await harness.services.auth.resolve_session(sessions[0].session_token)
    assert principal.fleet_node_id == node.fleet_node_id
    with pytest.raises(Unauthenticated):
        await harness.services.auth.resolve_session(node.session_token)


async def test_five_parallel_handshakes_leave_one_live_session(
    harness: Harness, org: Org, database_url: str
) -> None:
    """Five complete handshakes racing end with one session row for the node."""
    node = await enroll(harness.services, org, "edge-1")
    tokens = await asyncio.gather(
        *(handshake(harness.services, node.api_key, node.key) for _ in range(5)),
        return_exceptions=True,
    )
    live = []
    for token in tokens:
        if isinstance(token, str):
            try:
                await harness.services.auth.resolve_session(token)
                live.append(token)
            except Unauthenticated:
                pass
    assert len(live) == 1
    assert query(
        database_url,
        "SELECT count(*) FROM sessions WHERE fleet_node_id = %s",
        (node.fleet_node_id,),
    ) == [(1,)]
