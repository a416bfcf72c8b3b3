"""gateway.heap's rule: every collection observed; a full collection's survivors frozen
once there are enough of them; the frozen heap walked whole again each time it grew fourfold."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Histogram

from gateway.heap import FREEZE_MIN_SURVIVORS, YOUNG_THRESHOLD, HeapWatch, open_heap_watch

PAUSES = "fleet_gateway_gc_pause_seconds"


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def pauses_histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram(PAUSES, "pauses", registry=registry)


def count(registry: CollectorRegistry) -> float:
    return registry.get_sample_value(f"{PAUSES}_count") or 0.0


class FakeHeap:
    """What the watch reads of the collector, set by the test."""

    def __init__(self) -> None:
        self.survivors = 0
        self.frozen = 0

    def watch(self) -> HeapWatch:
        return HeapWatch(
            pauses_histogram()[1], survivors=lambda: self.survivors, frozen=lambda: self.frozen
        )


def collect(watch: HeapWatch, generation: int) -> None:
    watch("start", {"generation": generation})
    watch("stop", {"generation": generation, "collected": 0, "uncollectable": 0})


def test_a_full_collection_freezes_its_survivors_once_there_are_enough() -> None:
    """Only a full collection freezes, and only with FREEZE_MIN_SURVIVORS unfrozen survivors."""
    heap = FakeHeap()
    watch = heap.watch()
    heap.survivors = 10 * FREEZE_MIN_SURVIVORS
    collect(watch, 0)
    collect(watch, 1)
    assert watch.freezes == 0
    heap.survivors = FREEZE_MIN_SURVIVORS - 1
    collect(watch, 2)
    assert watch.freezes == 0
    heap.survivors = FREEZE_MIN_SURVIVORS
    collect(watch, 2)
    assert watch.freezes == 1
    assert gc.get_freeze_count() > 0


def test_the_frozen_heap_is_walked_whole_again_each_time_it_grew_fourfold() -> None:
    """Once the frozen heap has grown fourfold since it was last walked whole, it is unfrozen
    (the next full collection walks everything), then frozen again."""
    heap = FakeHeap()
    watch = heap.watch()
    heap.survivors, heap.frozen = FREEZE_MIN_SURVIVORS, 100_000
    collect(watch, 2)  # start-up: everything walked, then frozen
    heap.frozen = 399_999
    collect(watch, 2)
    assert (watch.freezes, watch.unfreezes) == (2, 0)
    heap.frozen = 400_000
    collect(watch, 2)
    assert (watch.freezes, watch.unfreezes) == (2, 1)
    assert gc.get_freeze_count() == 0
    heap.frozen = 210_000  # what the whole walk leaves frozen
    collect(watch, 2)
    assert (watch.freezes, watch.unfreezes) == (3, 1)
    heap.frozen = 839_999
    collect(watch, 2)
    assert watch.unfreezes == 1  # fourfold from 210,000 only at 840,000
    heap.frozen = 840_000
    collect(watch, 2)
    assert watch.unfreezes == 2


def test_the_real_collector_freezes_what_lives_on_and_counts_each_collection() -> None:
    """With the real collector: long-lived objects are frozen by a full collection, a
    second one finds too few new survivors to freeze again, each collection is counted."""
    registry, histogram = pauses_histogram()
    kept = [[] for _ in range(2 * FREEZE_MIN_SURVIVORS)]  # made first: no collection counted
    with open_heap_watch(histogram) as watch:
        gc.collect()
        assert watch.freezes == 1
        assert gc.get_freeze_count() >= len(kept)
        gc.collect()
        assert watch.freezes == 1
        gc.collect(0)
    assert gc.get_freeze_count() == 0
    assert count(registry) == 3


def test_the_observation_can_go_without_the_freeze() -> None:
    """With freezing off every collection is still observed and nothing is frozen."""
    registry, histogram = pauses_histogram()
    kept = [[] for _ in range(2 * FREEZE_MIN_SURVIVORS)]
    gc.collect()
    # Not 0: CPython 3.12.1 reports a few hundred frozen objects after a collection even
    # when nothing was frozen (3.11 and 3.13 report 0).
    frozen_before = gc.get_freeze_count()
    with open_heap_watch(histogram, freeze=False) as watch:
        gc.collect()
        gc.collect()
    assert len(kept) and watch.freezes == 0
    assert gc.get_freeze_count() == frozen_before
    assert count(registry) == 2


def test_young_objects_are_collected_in_larger_batches_while_the_watch_runs() -> None:
    """With the watch, 5,000 new long-lived objects cause no collection (Python's default
    would run several), and on close the process's thresholds are as they were."""
    before = gc.get_threshold()
    registry, histogram = pauses_histogram()
    with open_heap_watch(histogram):
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        gc.collect()  # an empty youngest generation to start from
        start = count(registry)
        kept = [[] for _ in range(5_000)]
        assert count(registry) == start
    assert len(kept) == 5_000
    assert gc.get_threshold() == before
