"""The garbage collector's pauses: observed, and kept short (issue 11, goal 5).

The cyclic collector stops the event loop while it runs, and a full (generation 2)
collection walks every tracked object: with 100,000 cached sessions that was up to 0.4 s.

- Every collection's duration is observed into ``fleet_gateway_gc_pause_seconds``
  (``gc.callbacks``, start to stop on ``time.perf_counter``), so operators see the pauses.
- The long-lived heap is frozen (``gc.freeze``: later collections skip it). The rule, kept
  at the end of each full collection (its survivors are long-lived by definition, and it
  has just freed every garbage cycle, so nothing dead is frozen): freeze when at least
  ``FREEZE_MIN_SURVIVORS`` objects survived it unfrozen. The first full collection after
  start-up so freezes what start-up built, and later ones what the process keeps: cached
  sessions, rate-limit buckets, open connections. A full collection then walks at most
  about that many objects (a few ms), however large the frozen heap.
- The youngest generation is collected after ``YOUNG_THRESHOLD`` net allocations, not
  Python's 700, which the requests in flight alone cross many times a second.

A frozen object is still freed when its last reference goes (reference counting), so an
evicted or revoked session is gone as before. What freezing gives up: a frozen object
that later dies inside a reference cycle is not reclaimed. To bound that, once the frozen
heap has grown fourfold since the collector last walked all of it, it is unfrozen, and the
next full collection walks (and reclaims) everything once, then freezes the survivors
again: one long pause (~0.2 s at 350,000 objects) each time the heap grows fourfold, e.g.
once while 100,000 nodes first connect. In a fleet in its stride the frozen heap stays the
same size (measured: what gets frozen dies by reference counting, not in cycles).

``open_heap_watch`` installs the callback for the life of one gateway's services and on
the way out removes it and unfreezes, so several apps in one process (tests, replicas)
neither stack callbacks nor leave the collector changed.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Histogram

FREEZE_MIN_SURVIVORS = 10_000  # 5-8 ms of walking in the gateway on these machines
# Python collects the youngest generation after 700 net allocations of tracked objects.
# A busy gateway's requests in flight swing that count by thousands: at 512 connections it
# collected ~180 times a second, 11 % of its CPU. Young collections walk about this many.
YOUNG_THRESHOLD = 10_000
REWALK_GROWTH = 4  # unfreeze once the frozen heap has grown this many times
_OLDEST = 2  # the generation of a full collection


def _unfrozen_survivors() -> int:
    return len(gc.get_objects(generation=_OLDEST))


class HeapWatch:
    """The ``gc.callbacks`` entry of one gateway."""

    def __init__(
        self,
        pauses: Histogram,
        *,
        freeze: bool = True,
        perf_counter: Callable[[], float] = time.perf_counter,
        survivors: Callable[[], int] = _unfrozen_survivors,
        frozen: Callable[[], int] = gc.get_freeze_count,
    ) -> None:
        self._pauses = pauses
        self._freeze = freeze
        self._perf_counter = perf_counter
        self._survivors = survivors
        self._frozen = frozen
        self._started_at: float | None = None
        self._walked_whole: int | None = None  # frozen objects when all was last walked
        self.freezes = 0
        self.unfreezes = 0

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
        if self._freeze and info.get("generation") == _OLDEST:
            self._after_full_collection()

    def _after_full_collection(self) -> None:
        walked_whole = self._walked_whole
        if walked_whole is not None and self._frozen() >= REWALK_GROWTH * walked_whole:
            gc.unfreeze()  # the next full collection walks everything
            self._walked_whole = None
            self.unfreezes += 1
        elif self._survivors() >= FREEZE_MIN_SURVIVORS:
            gc.freeze()
            self.freezes += 1
            if walked_whole is None:
                self._walked_whole = self._frozen()


@contextlib.contextmanager
def open_heap_watch(pauses: Histogram, *, freeze: bool = True) -> Iterator[HeapWatch]:
    """Observe (and freeze, see the module doc) while the block runs."""
    watch = HeapWatch(pauses, freeze=freeze)
    thresholds = gc.get_threshold()
    if freeze:
        gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
    gc.callbacks.append(watch)
    try:
        yield watch
    finally:
        gc.callbacks.remove(watch)
        gc.set_threshold(*thresholds)
        if watch.freezes:
            # Give the frozen heap back to the collector: this app's long-lived objects
            # are about to die, some of them in cycles.
            gc.unfreeze()
