"""The in-process session cache: bounded, never past expiry, invalidated by push."""

from __future__ import annotations

import datetime

from gateway.principals import NodePrincipal
from gateway.session_cache import SessionCache
from tests.support.gateway_http import MonotonicClock
from tests.support.gateway_services import FakeClock


def principal(node: int, session: int, clock: FakeClock, ttl: float = 3600) -> NodePrincipal:
    return NodePrincipal(
        fleet_node_id=node,
        org_id=1,
        session_id=session,
        session_expires_at=clock.now + datetime.timedelta(seconds=ttl),
    )


def enabled_cache(size: int, clock: FakeClock) -> SessionCache:
    cache = SessionCache(size, clock)
    cache.enable()
    return cache


def test_bounded_least_recently_used_goes_first() -> None:
    """Over its size the cache forgets the least recently used entry."""
    clock = FakeClock()
    cache = enabled_cache(2, clock)
    for n in (1, 2):
        cache.put(bytes([n]), principal(n, n, clock), cache.generation())
    assert cache.get(bytes([1])) is not None  # 1 is now the most recent
    cache.put(bytes([3]), principal(3, 3, clock), cache.generation())
    assert len(cache) == 2
    assert cache.get(bytes([2])) is None
    assert cache.get(bytes([1])) is not None


def test_entry_never_outlives_the_session() -> None:
    """An entry stops answering at its session's expiry."""
    clock = FakeClock()
    cache = enabled_cache(10, clock)
    cache.put(b"t", principal(1, 1, clock, ttl=60), cache.generation())
    clock.advance(59.999)
    assert cache.get(b"t") is not None
    clock.advance(0.001)
    assert cache.get(b"t") is None


def test_drop_node_keeps_only_the_new_session() -> None:
    """A rotation drops the node's old sessions but not the one that replaced them."""
    clock = FakeClock()
    cache = enabled_cache(10, clock)
    cache.put(b"old", principal(1, 1, clock), cache.generation())
    cache.put(b"new", principal(1, 2, clock), cache.generation())
    cache.put(b"other", principal(2, 3, clock), cache.generation())
    cache.drop_node(1, keep_session_id=2)
    assert cache.get(b"old") is None
    assert cache.get(b"new") is not None
    assert cache.get(b"other") is not None
    cache.drop_node(1)
    assert cache.get(b"new") is None


def test_lookup_racing_an_invalidation_is_not_cached() -> None:
    """A database answer read before its node was invalidated is not cached."""
    clock = FakeClock()
    cache = enabled_cache(10, clock)
    before = cache.generation()
    cache.drop_node(1)  # e.g. a revoke arrives while the lookup is in flight
    cache.put(b"stale", principal(1, 1, clock), before)
    assert cache.get(b"stale") is None
    cache.put(b"unrelated", principal(2, 2, clock), before)
    assert cache.get(b"unrelated") is not None


def test_disabled_while_push_channel_is_down() -> None:
    """Without the LISTEN connection nothing is cached, and reconnecting starts empty."""
    clock = FakeClock()
    cache = enabled_cache(10, clock)
    cache.put(b"t", principal(1, 1, clock), cache.generation())
    cache.disable()
    assert cache.get(b"t") is None
    cache.put(b"t", principal(1, 1, clock), cache.generation())
    assert len(cache) == 0
    cache.enable()
    assert len(cache) == 0


def test_answers_only_within_a_second_of_the_last_proof_of_life() -> None:
    """Connected is not enough: the cache answers only while the push channel proved itself
    alive (and caught up) less than a second ago; entries survive a lapse."""
    clock = FakeClock()
    monotonic = MonotonicClock()
    cache = SessionCache(10, clock, monotonic=monotonic)
    cache.enable()
    assert not cache.enabled  # connected, not yet proved
    cache.proved(monotonic.now)
    cache.put(b"t", principal(1, 1, clock), cache.generation())
    monotonic.now += 0.999
    assert cache.enabled
    monotonic.now += 0.001
    assert not cache.enabled
    cache.proved(monotonic.now - 0.5)  # a probe sent half a second ago came back
    assert cache.enabled and cache.get(b"t") is not None
    cache.proved(monotonic.now - 2)  # an older proof never moves the window back
    monotonic.now += 0.499
    assert cache.enabled
    cache.disable()
    cache.enable()
    assert not cache.enabled  # a new connection must prove itself again
