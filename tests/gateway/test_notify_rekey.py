"""A retried pre-approved Register re-keys the node on every replica (SPEC 3.8): two
gateways sharing one database, the retry through one, the old session refused by the other
within a second."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import attrs
import nacl.signing
import pytest
import pytest_asyncio

from fleetwire import messages as m
from gateway.errors import Unauthenticated
from tests.support.gateway_codes import new_pre_approved_code, register_signed
from tests.support.gateway_services import (
    Harness,
    Org,
    handshake,
    make_config,
    make_org,
    open_harness,
    wait_rejected,
)

pytestmark = pytest.mark.asyncio


@attrs.frozen
class Pair:
    a: Harness
    b: Harness
    org: Org


@pytest_asyncio.fixture
async def pair(database_url: str) -> AsyncIterator[Pair]:
    config = make_config(database_url)
    async with open_harness(config) as a, open_harness(config) as b:
        async with asyncio.timeout(10):
            await a.services.listener.connects.wait_for(1)
            await b.services.listener.connects.wait_for(1)
        yield Pair(a, b, await make_org(a.services, database_url))


def hits(h: Harness) -> float:
    return float(h.metrics.session_cache.labels(result="hit")._value.get())


@pytest.mark.parametrize("retry_on", ["same replica", "other replica"])
async def test_a_retried_register_ends_the_old_session_on_every_replica(
    pair: Pair, retry_on: str
) -> None:
    """The session of the node's previous api key, cached on replica B, is refused by B
    within 1 s of a retried Register (through A or through B itself); the old key no
    longer begins a handshake anywhere, the new one does."""
    key = nacl.signing.SigningKey.generate()
    code = await new_pre_approved_code(pair.a.services, pair.org, uses=2)
    first = await register_signed(pair.a.services, code.code, "edge-1", key)
    old_token = await handshake(pair.a.services, first.api_key, key)
    await pair.b.services.auth.resolve_session(old_token)
    before = hits(pair.b)
    await pair.b.services.auth.resolve_session(old_token)
    assert hits(pair.b) == before + 1  # B answers from its cache

    retrying = pair.a if retry_on == "same replica" else pair.b
    again = await register_signed(retrying.services, code.code, "edge-1", key)
    assert again.fleet_node_id == first.fleet_node_id

    await wait_rejected(pair.b.services, old_token)
    await wait_rejected(pair.a.services, old_token)
    for replica in (pair.a, pair.b):
        with pytest.raises(Unauthenticated, match="^invalid api key$"):
            await handshake(replica.services, first.api_key, key)
    new_token = await handshake(pair.b.services, again.api_key, key)
    principal = await pair.a.services.auth.resolve_session(new_token)
    assert principal.fleet_node_id == int(first.fleet_node_id)
    assert m.Int64(principal.fleet_node_id) == again.fleet_node_id
