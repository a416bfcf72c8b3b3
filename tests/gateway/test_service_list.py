"""ListFleetNodes: keyset pages newest first, opaque tokens, connectivity from the
gateway's clock, filtered in SQL so filtered listings page correctly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nacl.signing
import pytest
import pytest_asyncio

from fleetwire import messages as m
from gateway.errors import InvalidArgument
from tests.support.gateway_services import (
    FakeClock,
    Harness,
    Org,
    enroll,
    heartbeat_request,
    make_config,
    make_org,
    new_code,
    open_harness,
    register,
)

pytestmark = pytest.mark.asyncio

C = m.Connectivity


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def harness(database_url: str, clock: FakeClock) -> AsyncIterator[Harness]:
    config = make_config(database_url, offline_after_seconds=150.0)
    async with open_harness(config, clock=clock) as h:
        yield h


@pytest_asyncio.fixture
async def org(harness: Harness, database_url: str) -> Org:
    return await make_org(harness.services, database_url)


async def list_all(
    h: Harness, org: Org, page_size: int, connectivity: C = C.CONNECTIVITY_UNSPECIFIED
) -> list[list[str]]:
    """Every page's node names, following nextPageToken to the end."""
    pages: list[list[str]] = []
    token = ""
    while True:
        reply = await h.services.admin.list_nodes(
            org.viewer,
            m.ListFleetNodesRequest(
                page_size=m.Int32(page_size), page_token=token, connectivity=connectivity
            ),
        )
        pages.append([n.name for n in reply.fleet_nodes])
        token = reply.next_page_token
        if not token:
            return pages


async def test_pages_are_newest_first_and_stable(harness: Harness, org: Org) -> None:
    """Pages list newest first and a node created meanwhile does not shift later pages."""
    for i in range(5):
        await register(
            harness.services,
            await new_code(harness.services, org),
            f"n{i}",
            nacl.signing.SigningKey.generate(),
        )
    first = await harness.services.admin.list_nodes(
        org.admin, m.ListFleetNodesRequest(page_size=m.Int32(2))
    )
    assert [n.name for n in first.fleet_nodes] == ["n4", "n3"]
    await register(
        harness.services,
        await new_code(harness.services, org),
        "late",
        nacl.signing.SigningKey.generate(),
    )
    second = await harness.services.admin.list_nodes(
        org.admin, m.ListFleetNodesRequest(page_size=m.Int32(2), page_token=first.next_page_token)
    )
    assert [n.name for n in second.fleet_nodes] == ["n2", "n1"]
    assert await list_all(harness, org, 2) == [["late", "n4"], ["n3", "n2"], ["n1", "n0"]]
    assert await list_all(harness, org, 100) == [["late", "n4", "n3", "n2", "n1", "n0"]]


async def test_connectivity_follows_the_gateway_clock(
    harness: Harness, org: Org, clock: FakeClock
) -> None:
    """ONLINE while now - last_seen <= offline-after, OFFLINE after, NEVER_SEEN before any
    heartbeat; the filter pages over matching nodes only."""
    nodes = [await enroll(harness.services, org, f"n{i}") for i in range(6)]
    # n0..n2 heartbeat now; n3 heartbeats 151 s later; n4, n5 never.
    for node in nodes[:3]:
        principal = await harness.services.auth.resolve_session(node.session_token)
        await harness.services.heartbeats.record(principal, heartbeat_request(clock.now))
    clock.advance(151)
    principal = await harness.services.auth.resolve_session(nodes[3].session_token)
    await harness.services.heartbeats.record(principal, heartbeat_request(clock.now))

    listed = await harness.services.admin.list_nodes(org.admin, m.ListFleetNodesRequest())
    by_name = {n.name: n.connectivity for n in listed.fleet_nodes}
    assert by_name == {
        "n0": C.CONNECTIVITY_OFFLINE,
        "n1": C.CONNECTIVITY_OFFLINE,
        "n2": C.CONNECTIVITY_OFFLINE,
        "n3": C.CONNECTIVITY_ONLINE,
        "n4": C.CONNECTIVITY_NEVER_SEEN,
        "n5": C.CONNECTIVITY_NEVER_SEEN,
    }
    assert await list_all(harness, org, 2, C.CONNECTIVITY_OFFLINE) == [["n2", "n1"], ["n0"]]
    assert await list_all(harness, org, 1, C.CONNECTIVITY_ONLINE) == [["n3"]]
    assert await list_all(harness, org, 1, C.CONNECTIVITY_NEVER_SEEN) == [["n5"], ["n4"]]

    clock.advance(150)  # exactly offline-after since n3's heartbeat: still online
    assert await list_all(harness, org, 10, C.CONNECTIVITY_ONLINE) == [["n3"]]
    clock.advance(0.001)
    assert await list_all(harness, org, 10, C.CONNECTIVITY_ONLINE) == [[]]


@pytest.mark.parametrize("token", ["%%%", "bm90LWEta2V5", "bjow", "bjotNQ", "a", "bjox" + "A" * 60])
async def test_malformed_page_token_is_invalid_argument(
    harness: Harness, org: Org, token: str
) -> None:
    """A page token the gateway did not issue is refused as invalid_argument."""
    with pytest.raises(InvalidArgument, match="pageToken"):
        await harness.services.admin.list_nodes(
            org.admin, m.ListFleetNodesRequest(page_token=token)
        )
