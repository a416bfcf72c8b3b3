"""In-process token buckets (SPEC 4.8): per client for enrollment and the handshake and
for failed authentication, per node for heartbeats.

Each gateway process keeps its own buckets (N replicas give a fleet N times the
budget; accepted).

A client is keyed by :func:`client_key`: an IPv4 address as itself, an IPv4-mapped IPv6
address as the IPv4 address it maps, and any other IPv6 address by its /64. One
subscriber's network is (at least) a /64, so rotating addresses inside it must not
buy a fresh bucket.

Memory is bounded (``max_keys``), and making room never frees a client that is over its
limit. A new key that finds the table full gets room this way:

1. buckets that have refilled completely are dropped from the idle end: a full bucket
   is the same as no bucket, so nobody gains anything;
2. else the least recently used bucket that still holds a token goes: its owner is
   within its limit, and comes back with at most one burst;
3. a bucket without a token (its owner is over its limit) is never dropped: it is moved
   to the recent end and the next one is examined, at most ``SCAN_LIMIT`` per new key so
   a table full of such buckets cannot make a request expensive.

When no room can be made that way, the newcomer gets no bucket of its own: every such
newcomer shares one overflow bucket of the same rate and burst, until buckets can be
dropped again. A flood of fresh addresses therefore can neither release a limited
client nor grow the table; at worst, newcomers arriving during that flood share one
client's budget.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

import attrs

Clock = Callable[[], float]

# Buckets examined for one new key when every bucket on the way is over its limit.
SCAN_LIMIT = 32


def client_key(address: str) -> str:
    """The rate-limit key of a resolved client address (see the module docstring)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # "unknown": everything unreadable shares one bucket
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    prefix = ipaddress.IPv6Address(int(ip) >> 64 << 64)  # also drops a %zone
    return f"{prefix}/64"


@attrs.define
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens per second, at most ``burst``."""

    def __init__(
        self, rate: float, burst: int, *, clock: Clock = time.monotonic, max_keys: int = 100_000
    ) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be positive, burst and max_keys at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        # Ordered by last use: the front holds the buckets idle the longest.
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        # Shared by newcomers while the table is full of clients over their limit.
        self._overflow = _Bucket(self.burst, clock())

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable) -> float | None:
        """Spend one token of ``key``'s bucket: ``None`` if allowed, else the whole
        seconds (at least 1) until a token is available, for ``Retry-After``."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
        elif self._make_room(now):
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket = self._overflow
        self._refill(bucket, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return self._retry_after(bucket.tokens)

    def wait(self, key: Hashable) -> int | None:
        """What :meth:`take` would answer now, without spending a token or making a bucket
        (a key without a bucket has its whole burst, unless newcomers share the overflow)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) < self._max_keys:
                return None
            bucket = self._overflow
        tokens = self._tokens(bucket, now)
        return None if tokens >= 1.0 else self._retry_after(tokens)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        bucket.tokens = self._tokens(bucket, now)
        bucket.updated = now

    def _tokens(self, bucket: _Bucket, now: float) -> float:
        return min(self.burst, bucket.tokens + max(0.0, now - bucket.updated) * self.rate)

    def _retry_after(self, tokens: float) -> int:
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _make_room(self, now: float) -> bool:
        """Room for one more key, by the rule of the module docstring; False if none."""
        if len(self._buckets) < self._max_keys:
            return True
        # Drop refilled buckets from the idle end; stop at the first one still in use.
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if self._tokens(oldest, now) < self.burst:
                break
            self._buckets.popitem(last=False)
        if len(self._buckets) < self._max_keys:
            return True
        for _ in range(min(SCAN_LIMIT, len(self._buckets))):
            key, oldest = next(iter(self._buckets.items()))
            if self._tokens(oldest, now) >= 1.0:
                del self._buckets[key]
                return True
            # Over its limit: keep it (freeing it would release it), look at the next.
            self._buckets.move_to_end(key)
        return False


@attrs.frozen
class RateLimits:
    """The limits of one gateway process."""

    auth: TokenBuckets  # keyed by client_key(resolved client address)
    heartbeat: TokenBuckets  # keyed by fleet node id
    # Spent by each refused credential, keyed like ``auth`` (gateway.admission).
    auth_failures: TokenBuckets


def new_rate_limits(
    *,
    auth_rate: float,
    auth_burst: int,
    heartbeat_rate: float,
    heartbeat_burst: int,
    clock: Clock = time.monotonic,
) -> RateLimits:
    return RateLimits(
        auth=TokenBuckets(auth_rate, auth_burst, clock=clock),
        heartbeat=TokenBuckets(heartbeat_rate, heartbeat_burst, clock=clock),
        auth_failures=TokenBuckets(auth_rate, auth_burst, clock=clock),
    )
