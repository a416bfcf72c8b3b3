"""Token buckets of the gateway (SPEC 4.8), on an injected clock: no sleeps."""

from __future__ import annotations

import pytest

from gateway.ratelimit import TokenBuckets, client_key
from tests.support.gateway_http import MonotonicClock


def test_burst_then_refused_with_retry_after() -> None:
    """A key gets its burst at once, then a refusal saying how long to wait (at least 1 s)."""
    clock = MonotonicClock()
    buckets = TokenBuckets(5, 20, clock=clock)
    assert [buckets.take("10.0.0.1") for _ in range(20)] == [None] * 20
    assert buckets.take("10.0.0.1") == 1


def test_retry_after_is_the_time_until_a_token_rounded_up() -> None:
    """At 0.25 tokens/s an empty bucket asks for a 4 s wait, and is right."""
    clock = MonotonicClock()
    buckets = TokenBuckets(0.25, 1, clock=clock)
    assert buckets.take("k") is None
    assert buckets.take("k") == 4
    clock.now += 3.9
    assert buckets.take("k") == 1
    clock.now += 0.1
    assert buckets.take("k") is None


def test_refills_at_the_rate_and_never_past_the_burst() -> None:
    """After a long idle spell a key has its burst again, not more."""
    clock = MonotonicClock()
    buckets = TokenBuckets(4, 8, clock=clock)
    for _ in range(8):
        assert buckets.take("node") is None
    assert buckets.take("node") is not None
    clock.now += 0.25
    assert buckets.take("node") is None
    assert buckets.take("node") is not None
    clock.now += 3600
    assert [buckets.take("node") for _ in range(9)].count(None) == 8


def test_keys_are_independent() -> None:
    """One key's exhaustion does not touch another's bucket."""
    buckets = TokenBuckets(1, 1, clock=MonotonicClock())
    assert buckets.take(1) is None
    assert buckets.take(1) is not None
    assert buckets.take(2) is None


def test_memory_is_bounded_and_refilled_buckets_go_first() -> None:
    """Past max_keys, idle (refilled) buckets are dropped before busy ones."""
    clock = MonotonicClock()
    buckets = TokenBuckets(1, 2, clock=clock, max_keys=3)
    buckets.take("idle")
    clock.now += 10  # "idle" is full again
    buckets.take("busy")
    buckets.take("busy")  # empty now
    buckets.take("other")
    buckets.take("new")  # at capacity: "idle" is the one to go
    assert len(buckets) == 3
    assert buckets.take("busy") is not None  # still remembered as empty
    for n in range(100):
        buckets.take(f"flood-{n}")
    assert len(buckets) == 3


def test_rejects_nonsense_parameters() -> None:
    """A zero rate or burst is a programming error, not a silent no-limit."""
    with pytest.raises(ValueError):
        TokenBuckets(0, 1)
    with pytest.raises(ValueError):
        TokenBuckets(1, 0)


def test_ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() -> None:
    """Addresses of one IPv6 /64 share a key, another /64 does not, and an IPv4-mapped IPv6
    address is the IPv4 address it maps."""
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:198.51.100.7") == client_key("198.51.100.7") == "198.51.100.7"
    assert client_key("fe80::1%eth0") == client_key("fe80::2")
    assert client_key("unknown") == "unknown"


def test_a_flood_of_fresh_keys_never_frees_a_limited_client() -> None:
    """100,000 fresh keys pass through a full table, and a client over its limit is still
    refused afterwards (it is never the one evicted)."""
    clock = MonotonicClock()
    buckets = TokenBuckets(5, 20, clock=clock)
    limited = client_key("2001:db8::1")
    while buckets.take(limited) is None:
        pass
    for n in range(100_000):
        buckets.take(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    assert len(buckets) <= 100_000
    assert buckets.take(limited) is not None
    clock.now += 0.2  # one token's worth: it gets exactly that, not a fresh burst
    assert buckets.take(limited) is None
    assert buckets.take(limited) is not None


def test_when_every_bucket_is_over_its_limit_newcomers_share_one_bucket() -> None:
    """With a full table of clients over their limit, newcomers get no bucket of their own:
    together they share one bucket of the same rate and burst, until room frees up."""
    clock = MonotonicClock()
    buckets = TokenBuckets(1, 2, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        while buckets.take(key) is None:
            pass
    newcomers = [buckets.take(f"new-{n}") for n in range(4)]
    assert newcomers[:2] == [None, None]
    assert newcomers[2] is not None and newcomers[3] is not None
    assert len(buckets) == 3
    assert buckets.take("a") is not None  # still held, still limited
    clock.now += 10  # everyone refilled: a newcomer gets a bucket of its own again
    assert buckets.take("new-4") is None
    assert buckets.take("new-4") is None
    assert len(buckets) <= 3


def test_wait_tells_what_take_would_answer_without_spending() -> None:
    """Peeking at a bucket spends nothing and makes no bucket for a key that has none."""
    clock = MonotonicClock()
    buckets = TokenBuckets(1, 2, clock=clock)
    assert buckets.wait("k") is None
    assert len(buckets) == 0
    assert [buckets.take("k"), buckets.take("k")] == [None, None]
    assert buckets.wait("k") == buckets.wait("k") == 1
    clock.now += 1
    assert buckets.wait("k") is None
    assert buckets.take("k") is None
    assert buckets.take("k") == 1
