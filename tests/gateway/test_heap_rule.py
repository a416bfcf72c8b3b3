"""gateway.heap's rule: every collection observed, the heap frozen after start-up and
after the session cache grew (no gateway needed: the watch alone)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Histogram

from gateway.heap import MIN_GROWTH, open_heap_watch

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


def test_freezes_after_start_up_and_then_only_after_the_cache_grew() -> None:
    """The first full collection freezes the heap; later ones freeze again only once the
    session cache has grown by a quarter and at least MIN_GROWTH entries."""
    size = 0
    registry, histogram = pauses_histogram()
    with open_heap_watch(histogram, lambda: size) as watch:
        gc.collect(1)
        assert watch.freezes == 0  # only a full collection freezes
        gc.collect()
        assert watch.freezes == 1
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert watch.freezes == 1  # nothing grew
        size = MIN_GROWTH - 1
        gc.collect()
        assert watch.freezes == 1
        size = MIN_GROWTH
        gc.collect()
        assert watch.freezes == 2
        size = 2 * MIN_GROWTH  # MIN_GROWTH more: enough while a quarter is less
        gc.collect()
        assert watch.freezes == 3
        size = 8 * MIN_GROWTH
        gc.collect()
        assert watch.freezes == 4
        size = 10 * MIN_GROWTH - 1  # a quarter of 8,000 is 2,000
        gc.collect()
        assert watch.freezes == 4
        size = 10 * MIN_GROWTH
        gc.collect()
        assert watch.freezes == 5
    assert gc.get_freeze_count() == 0
    assert count(registry) == 9


def test_the_observation_can_go_without_the_freeze() -> None:
    """With freezing off every collection is still observed and nothing is frozen."""
    registry, histogram = pauses_histogram()
    with open_heap_watch(histogram, lambda: 10**6, freeze=False) as watch:
        gc.collect()
        gc.collect()
    assert watch.freezes == 0
    assert gc.get_freeze_count() == 0
    assert count(registry) == 2
