"""Rate limits through HTTP (SPEC 4.8, 6.3): per client address and per node, on a fake clock."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from fleetwire import procedures as p
from gateway.app import create_app
from gateway.config import Config
from tests.support.gateway_http import MonotonicClock, call, enroll, heartbeat, new_admin_token

pytestmark = pytest.mark.asyncio


HANDSHAKE_CALLS = (p.REGISTER, p.BEGIN_AUTH_HANDSHAKE, p.COMPLETE_AUTH_HANDSHAKE)


async def test_21st_handshake_call_from_one_address_is_refused(
    aiohttp_client: Any, database_url: str
) -> None:
    """Register/Begin/Complete share a burst of 20 per address; the 21st gets 429 + Retry-After."""
    client = await aiohttp_client(
        create_app(Config(database_url=database_url), clock=MonotonicClock())
    )
    codes = [(await call(client, HANDSHAKE_CALLS[n % 3], {})).body["code"] for n in range(20)]
    assert codes == ["invalid_argument"] * 20  # limit passed, then validation
    refused = await call(client, p.BEGIN_AUTH_HANDSHAKE, {})
    assert refused.status == 429
    assert refused.body["code"] == "resource_exhausted"
    assert int(refused.headers["Retry-After"]) >= 1
    async with client.get("/metrics") as resp:
        assert 'fleet_gateway_rate_limited_total{limit="auth"} 1.0' in await resp.text()


async def test_forwarded_address_counts_only_from_a_trusted_proxy(
    aiohttp_client: Any, database_url: str
) -> None:
    """Behind a trusted proxy each X-Forwarded-For client has its own bucket; otherwise not."""
    trusted = Config(
        database_url=database_url,
        auth_burst=2,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    )
    client = await aiohttp_client(create_app(trusted, clock=MonotonicClock()))
    first = {"X-Forwarded-For": "198.51.100.1"}
    second = {"X-Forwarded-For": "6.6.6.6, 198.51.100.2"}
    assert (await call(client, p.REGISTER, {}, headers=first)).status == 400
    assert (await call(client, p.REGISTER, {}, headers=first)).status == 400
    assert (await call(client, p.REGISTER, {}, headers=first)).status == 429
    assert (await call(client, p.REGISTER, {}, headers=second)).status == 400
    forged = {"X-Forwarded-For": "198.51.100.2, 198.51.100.1"}  # the proxy saw .1
    assert (await call(client, p.REGISTER, {}, headers=forged)).status == 429

    untrusted = Config(database_url=database_url, auth_burst=2)
    client = await aiohttp_client(create_app(untrusted, clock=MonotonicClock()))
    for n in range(2):
        reply = await call(client, p.REGISTER, {}, headers={"X-Forwarded-For": f"10.0.0.{n}"})
        assert reply.status == 400
    reply = await call(client, p.REGISTER, {}, headers={"X-Forwarded-For": "10.0.0.9"})
    assert reply.status == 429


async def test_heartbeats_faster_than_4_per_second_are_refused(
    aiohttp_client: Any, database_url: str
) -> None:
    """A node gets a burst of 8 heartbeats and 4/s after that; other nodes are unaffected."""
    clock = MonotonicClock()
    config = Config(database_url=database_url, last_seen_debounce_seconds=0)
    client = await aiohttp_client(create_app(config, clock=clock))
    admin = await new_admin_token(database_url)
    noisy = await enroll(client, admin, "noisy")
    quiet = await enroll(client, admin, "quiet")

    statuses = [(await heartbeat(client, noisy.session_token)).status for _ in range(9)]
    assert statuses == [200] * 8 + [429]
    refused = await heartbeat(client, noisy.session_token)
    assert refused.body["code"] == "resource_exhausted"
    assert refused.headers["Retry-After"] == "1"
    assert (await heartbeat(client, quiet.session_token)).status == 200

    clock.now += 1.0  # one second buys four more, not five
    statuses = [(await heartbeat(client, noisy.session_token)).status for _ in range(5)]
    assert statuses == [200] * 4 + [429]


async def test_forwarded_header_is_honoured_from_a_trusted_proxy(
    aiohttp_client: Any, database_url: str
) -> None:
    """RFC 7239 Forwarded (for=, with ports and IPv6 brackets) names the client too."""
    config = Config(
        database_url=database_url,
        auth_burst=1,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    )
    client = await aiohttp_client(create_app(config, clock=MonotonicClock()))
    v4 = {"Forwarded": "for=198.51.100.1:5555;proto=https"}
    v6 = {"Forwarded": 'for=6.6.6.6, for="[2001:db8::1]:4711"'}
    assert (await call(client, p.REGISTER, {}, headers=v4)).status == 400
    assert (await call(client, p.REGISTER, {}, headers=v4)).status == 429
    assert (await call(client, p.REGISTER, {}, headers=v6)).status == 400
    assert (await call(client, p.REGISTER, {}, headers=v6)).status == 429


async def test_rotating_through_one_ipv6_64_does_not_dodge_the_limit(
    aiohttp_client: Any, database_url: str
) -> None:
    """Behind a trusted proxy, every address of one IPv6 /64 spends the same bucket, another
    /64 has its own, and an IPv4-mapped address spends its IPv4 address's bucket."""
    config = Config(
        database_url=database_url,
        auth_burst=2,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    )
    client = await aiohttp_client(create_app(config, clock=MonotonicClock()))

    async def register_from(address: str) -> int:
        return (await call(client, p.REGISTER, {}, headers={"X-Forwarded-For": address})).status

    statuses = [await register_from(f"2001:db8:7:1:{n:x}::1") for n in range(1, 6)]
    assert statuses == [400, 400, 429, 429, 429]
    assert await register_from("2001:db8:7:2::1") == 400
    assert [await register_from(a) for a in ("198.51.100.7", "::ffff:198.51.100.7")] == [400, 400]
    assert await register_from("::ffff:c633:6407") == 429  # 198.51.100.7 spelled in hex
