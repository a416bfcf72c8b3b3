"""In-process token buckets (SPEC 4.8): per client address for enrollment and the
handshake, per node for heartbeats.

Each gateway process keeps its own buckets (N replicas give a fleet N times the
budget; accepted). Memory is bounded: a bucket that has refilled completely is
the same as no bucket and is dropped first; past ``max_keys`` the least recently
used bucket goes, which can only make a limit more lenient, never stricter.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

import attrs

Clock = Callable[[], float]


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

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable) -> float | None:
        """Spend one token of ``key``'s bucket: ``None`` if allowed, else the whole
        seconds (at least 1) until a token is available, for ``Retry-After``."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def _full(self, bucket: _Bucket, now: float) -> bool:
        return bucket.tokens + (now - bucket.updated) * self.rate >= self.burst

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self._max_keys:
            return
        # Drop refilled buckets from the idle end; stop at the first one still in use.
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if not self._full(oldest, now):
                break
            self._buckets.popitem(last=False)
        while len(self._buckets) >= self._max_keys:
            self._buckets.popitem(last=False)


@attrs.frozen
class RateLimits:
    """The two limits of one gateway process."""

    auth: TokenBuckets  # keyed by resolved client address
    heartbeat: TokenBuckets  # keyed by fleet node id


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
    )
