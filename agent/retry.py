"""Retrying a one-shot command's gateway call until a deadline (SPEC 5.4, 5.10).

``enroll`` retries Register (and the handshake that follows) through transient failures
(network, timeouts, 5xx, 429 with ``Retry-After``) for up to ``--enroll-timeout``, so a
thousand nodes enrolling at once against rate limits all get through. The waits are the
session keeper's backoff (5 s base, capped exponential, full jitter, ``Retry-After``
obeyed). A call in flight at the deadline is never cut short: giving up happens only
between attempts, so an attempt the gateway answered is never thrown away.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from agent.backoff import backoff_seconds
from agent.errors import GatewayUnavailable, TlsFailure, Transient
from fleetwire.durations import format_duration

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 5.0

T = TypeVar("T")


async def retry_transient(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    deadline: float,
    rng: random.Random,
) -> T:
    """``attempt()``'s result; a :class:`Transient` failure is retried after a backoff
    while the next attempt would start before ``deadline`` (Trio time), else
    :class:`GatewayUnavailable` (69) saying how long it tried. A TLS failure (an untrusted
    certificate will not fix itself) is 69 at once; other errors rise as they are."""
    started = trio.current_time()
    failures = 0
    last = False  # this attempt starts at (or after) the deadline: no retry after it
    while True:
        try:
            return await attempt()
        except TlsFailure as exc:
            raise GatewayUnavailable.from_transient(exc) from exc
        except Transient as exc:
            failures += 1
            now = trio.current_time()
            if last or now >= deadline:
                tried = format_duration(round(now - started))
                raise GatewayUnavailable(
                    f"the gateway is unreachable or unavailable: {exc}; gave up {what} after "
                    f"{failures} attempts in {tried} (--enroll-timeout); run the same command "
                    "again later"
                ) from exc
            delay = backoff_seconds(BACKOFF_BASE_SECONDS, failures, rng, exc.retry_after_seconds)
            if now + delay >= deadline:
                # One last attempt at the deadline (decided here, not by comparing clock
                # readings after the sleep, which float rounding can leave a hair short).
                delay, last = deadline - now, True
            logger.warning(
                "%s failed (%s); retrying in %.1f s (attempt %d)", what, exc, delay, failures + 1
            )
            await trio.sleep(delay)
