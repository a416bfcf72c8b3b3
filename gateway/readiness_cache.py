"""``/readyz`` answers from a probe at most a second old (SPEC 2.3), so no request rate
costs more than one database round trip per second: requests that arrive while a probe
runs wait for its answer (single flight) instead of starting their own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

MAX_AGE_SECONDS = 1.0


class CachedProbe:
    def __init__(
        self,
        probe: Callable[[], Awaitable[bool]],
        clock: Callable[[], float],
        max_age_seconds: float = MAX_AGE_SECONDS,
    ) -> None:
        self._probe = probe
        self._clock = clock  # monotonic
        self._max_age_seconds = max_age_seconds
        self._lock = asyncio.Lock()
        self._last: tuple[float, bool] | None = None  # (when the probe started, its answer)

    async def check(self) -> bool:
        answer = self._fresh()
        if answer is not None:
            return answer
        async with self._lock:
            answer = self._fresh()  # the probe we waited for answered
            if answer is not None:
                return answer
            started = self._clock()  # its age counts from before it ran
            answer = await self._probe()
            self._last = (started, answer)
            return answer

    def _fresh(self) -> bool | None:
        if self._last is None or self._clock() - self._last[0] >= self._max_age_seconds:
            return None
        return self._last[1]
