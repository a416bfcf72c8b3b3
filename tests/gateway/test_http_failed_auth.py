"""Failed authentication is cheap and limited, and /readyz is no database load tool
(SPEC 2.3, 4.8): counted with pg_stat_statements on a cluster of this module's own."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from fleetwire import procedures as p
from gateway import secrets
from gateway.app import SERVICES_KEY, create_app
from gateway.config import Config
from gateway.dev.pgcluster import Cluster
from tests.support.gateway_http import (
    MonotonicClock,
    b64,
    call,
    enroll,
    heartbeat,
    new_admin_token,
)
from tests.support.postgres import drop_database, new_database
from tests.support.statements import CountedDatabase, start_counting_cluster

pytestmark = pytest.mark.asyncio

Client = TestClient[Any, Any]
SESSION_LOOKUP = "%FROM sessions s%"
ADMIN_TOKEN_LOOKUP = "%FROM admin_tokens%"
API_KEY_LOOKUP = "%FROM api_keys k%"
READINESS_PROBE = "SELECT $1"


@pytest.fixture(scope="module")
def counting_cluster() -> Iterator[Cluster]:
    cluster = start_counting_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def db(counting_cluster: Cluster) -> Iterator[CountedDatabase]:
    name, url = new_database(counting_cluster)
    yield CountedDatabase(counting_cluster, name, url)
    drop_database(counting_cluster, name)


async def gateway(aiohttp_client: Any, db: CountedDatabase, clock: MonotonicClock) -> Client:
    client: Client = await aiohttp_client(create_app(Config(database_url=db.url), clock=clock))
    async with asyncio.timeout(10):  # the session cache answers once the listener is up
        await client.app[SERVICES_KEY].listener.connects.wait_for(1)
    return client


async def metric(client: Client, line: str) -> bool:
    async with client.get("/metrics") as resp:
        return line in (await resp.text()).splitlines()


async def test_random_bearers_are_limited_before_any_database_work(
    aiohttp_client: Any, db: CountedDatabase
) -> None:
    """After a burst of 20 failed bearers from one address, its calls get 429 + Retry-After
    without a database query, except a node whose session is cached; the bucket refills at
    the auth rate."""
    clock = MonotonicClock()
    client = await gateway(aiohttp_client, db, clock)
    admin = await new_admin_token(db.url)
    node = await enroll(client, admin, "edge-1")
    assert (await heartbeat(client, node.session_token)).status == 200  # now cached
    db.reset()

    replies = [await heartbeat(client, secrets.new_session_token()) for _ in range(1000)]
    statuses = collections.Counter(reply.status for reply in replies)
    assert statuses == {401: 20, 429: 980}
    assert all(int(reply.headers["Retry-After"]) >= 1 for reply in replies if reply.status == 429)
    assert {reply.body["code"] for reply in replies[20:]} == {"resource_exhausted"}
    assert db.calls(SESSION_LOOKUP) == 20

    assert (await heartbeat(client, node.session_token)).status == 200  # cached: still served
    fake_admin = secrets.new_admin_token()
    for token in (fake_admin, admin):  # admin tokens are never cached: both wait
        reply = await call(client, p.LIST_FLEET_NODES, {}, token=token)
        assert (reply.status, reply.body["code"]) == (429, "resource_exhausted")
    assert db.calls(ADMIN_TOKEN_LOOKUP) == 0
    assert await metric(client, 'fleet_gateway_rate_limited_total{limit="auth_failures"} 982.0')

    clock.now += 1.0  # five tokens' worth at 5/s; a valid token spends none of them
    assert (await call(client, p.LIST_FLEET_NODES, {}, token=admin)).status == 200
    statuses = collections.Counter(
        [(await call(client, p.LIST_FLEET_NODES, {}, token=fake_admin)).status for _ in range(10)]
    )
    assert statuses == {401: 5, 429: 5}
    assert db.calls(ADMIN_TOKEN_LOOKUP) == 6


async def test_refused_api_keys_spend_the_failed_authentication_bucket(
    aiohttp_client: Any, db: CountedDatabase
) -> None:
    """api keys BeginAuthHandshake refuses count as failed authentication: once 20 were
    refused, a random bearer from that address gets 429 without a lookup."""
    client = await gateway(aiohttp_client, db, MonotonicClock())
    pubkey = b64(bytes(32))
    for _ in range(20):
        body = {"apiKey": secrets.new_api_key(), "identityPubkey": pubkey}
        reply = await call(client, p.BEGIN_AUTH_HANDSHAKE, body)
        assert reply.body == {"code": "unauthenticated", "message": "invalid api key"}
    db.reset()
    reply = await heartbeat(client, secrets.new_session_token())
    assert (reply.status, reply.body["code"]) == (429, "resource_exhausted")
    assert db.calls(SESSION_LOOKUP) == 0


async def test_readyz_answers_from_one_probe_a_second(
    aiohttp_client: Any, db: CountedDatabase
) -> None:
    """1,000 concurrent and 1,000 sequential /readyz within a second cost one trivial query;
    a second later the next one probes again."""
    clock = MonotonicClock()
    client = await gateway(aiohttp_client, db, clock)
    db.reset()

    async def ready() -> int:
        async with client.get("/readyz") as resp:
            return resp.status

    assert set(await asyncio.gather(*(ready() for _ in range(1000)))) == {200}
    assert {await ready() for _ in range(1000)} == {200}
    assert db.calls(READINESS_PROBE) == 1
    clock.now += 1.0
    assert await ready() == 200
    assert db.calls(READINESS_PROBE) == 2
