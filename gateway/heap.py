"""The garbage collector's pauses: observed, and kept short (issue 11, goal 5).

The cyclic collector stops the event loop while it runs, and a full (generation 2)
collection walks every tracked object: with 100,000 cached sessions that was up to 0.4 s.

- Every collection's duration is observed into ``fleet_gateway_gc_pause_seconds``
  (``gc.callbacks``, start to stop on ``time.perf_counter``), so operators see the pauses.
- The long-lived heap is frozen (``gc.freeze``: later collections skip it), at the end of
  a full collection, when its survivors are long-lived by definition and every garbage
  cycle has just been freed, so nothing dead is frozen. The rule is bounded: the first
  full collection after start-up freezes what start-up built (modules, the app), and a
  later one freezes again only once the session cache has grown by a quarter (and at
  least ``MIN_GROWTH`` entries) since the last freeze, so a cache filling to 200,000
  sessions freezes about 20 times, and a fleet in its stride not at all.

Freezing does not keep anything alive: a frozen object is still freed when its last
reference goes, so an evicted or revoked session is gone as before. What it gives up: a
frozen object that later dies inside a reference cycle is never reclaimed, which the
rule bounds by the heap at the freezes. ``open_heap_watch`` installs the callback for
the life of one gateway's services and on the way out removes it and unfreezes, so
several apps in one process (tests, replicas) neither stack callbacks nor leave the
collector changed.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Histogram

logger = logging.getLogger(__name__)

MIN_GROWTH = 1_000  # session cache entries
GROWTH_FRACTION = 0.25
_OLDEST = 2  # the generation of a full collection


class HeapWatch:
    """The ``gc.callbacks`` entry of one gateway."""

    def __init__(
        self,
        pauses: Histogram,
        cache_size: Callable[[], int],
        *,
        freeze: bool = True,
        perf_counter: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._pauses = pauses
        self._cache_size = cache_size
        self._freeze = freeze
        self._perf_counter = perf_counter
        self._started_at: float | None = None
        self._frozen_at_size: int | None = None  # the cache's size at the last freeze
        self.freezes = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector: an exception here would only be printed, so none may
        # escape (nothing below raises).
        if phase == "start":
            self._started_at = self._perf_counter()
            return
        if self._started_at is None:  # installed during a collection
            return
        self._pauses.observe(self._perf_counter() - self._started_at)
        self._started_at = None
        if self._freeze and info.get("generation") == _OLDEST and self._grown():
            gc.freeze()
            self._frozen_at_size = self._cache_size()
            self.freezes += 1

    def _grown(self) -> bool:
        last = self._frozen_at_size
        if last is None:
            return True  # start-up's heap
        return self._cache_size() - last >= max(MIN_GROWTH, int(last * GROWTH_FRACTION))


@contextlib.contextmanager
def open_heap_watch(
    pauses: Histogram, cache_size: Callable[[], int], *, freeze: bool = True
) -> Iterator[HeapWatch]:
    """Observe (and freeze, see the module doc) while the block runs."""
    watch = HeapWatch(pauses, cache_size, freeze=freeze)
    gc.callbacks.append(watch)
    try:
        yield watch
    finally:
        gc.callbacks.remove(watch)
        if watch.freezes:
            # Give the frozen heap back to the collector: this app's long-lived objects
            # are about to die, some of them in cycles.
            gc.unfreeze()
