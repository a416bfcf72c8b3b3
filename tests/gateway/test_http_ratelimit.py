"""Token buckets of the gateway (SPEC 4.8), on an injected clock: no sleeps."""

from __future__ import annotations

import pytest

from gateway.ratelimit import TokenBuckets
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
