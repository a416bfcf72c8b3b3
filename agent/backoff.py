"""Capped exponential backoff with full jitter (SPEC 5.10)."""

from __future__ import annotations

import random

MAX_BACKOFF_SECONDS = 300.0


def backoff_seconds(
    base_seconds: float,
    failures: int,
    rng: random.Random,
    retry_after_seconds: float | None = None,
) -> float:
    """The wait after the ``failures``-th consecutive failure (1, 2, ...).

    Uniform in ``[base, min(5 min, base * 2^failures)]`` (never below the base, so a
    failing daemon is never faster than its interval), stretched to ``Retry-After``
    (itself capped at 5 min) when the gateway asks for longer.
    """
    upper = max(base_seconds, min(MAX_BACKOFF_SECONDS, base_seconds * 2.0 ** min(failures, 32)))
    delay = rng.uniform(base_seconds, upper)
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, MAX_BACKOFF_SECONDS))
    return delay
