"""Prometheus metrics of one gateway app (SPEC 2.3).

Each app owns its own registry, so several apps in one process (tests, two
replicas) do not share counters. Secrets never become label values.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

M = TypeVar("M", Counter, Histogram)


class Bound(Generic[M]):
    """One labelled child of a metric, bound at its first use and kept.

    ``metric.labels(...)`` on every request costs more than the count itself; binding
    at the first use (not at start-up) keeps /metrics showing a series only once it
    counted something, exactly as calling ``labels()`` each time did."""

    __slots__ = ("_child", "_labels", "_metric")

    def __init__(self, metric: M, **labels: str) -> None:
        self._metric: M = metric
        self._labels = labels
        self._child: M | None = None

    def __call__(self) -> M:
        child = self._child
        if child is None:
            child = self._child = self._metric.labels(**self._labels)
        return child


@attrs.frozen
class Metrics:
    registry: CollectorRegistry
    requests: Counter  # labels: procedure, code
    request_latency: Histogram  # labels: procedure
    heartbeats_received: Counter
    last_seen_rows_written: Counter
    last_seen_statements: Counter
    heartbeats_debounced: Counter
    auth_failures: Counter  # labels: reason
    session_cache: Counter  # labels: result (hit|miss)
    rate_limited: Counter  # labels: limit (auth|heartbeat|auth_failures)
    db_pool_in_use: Gauge
    fleet_nodes: Gauge  # labels: org, connectivity (online|offline|never_seen|stopped)
    listener_up: Gauge
    ready: Gauge
    background_task_failures: Counter  # labels: task
    gc_pause: Histogram


def new_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Counter(
            "fleet_gateway_requests",
            "RPCs answered, by procedure and Connect code (ok for success)",
            ["procedure", "code"],
            registry=registry,
        ),
        request_latency=Histogram(
            "fleet_gateway_request_seconds",
            "RPC latency, by procedure",
            ["procedure"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        ),
        heartbeats_received=Counter(
            "fleet_gateway_heartbeats_received", "Heartbeats accepted", registry=registry
        ),
        last_seen_rows_written=Counter(
            "fleet_gateway_last_seen_rows_written",
            "fleet_nodes rows whose last_seen_at was advanced",
            registry=registry,
        ),
        last_seen_statements=Counter(
            "fleet_gateway_last_seen_statements",
            "UPDATE statements issued for last_seen_at (one per group-commit flush)",
            registry=registry,
        ),
        heartbeats_debounced=Counter(
            "fleet_gateway_heartbeats_debounced",
            "Heartbeats answered without a write because last_seen_at was recent",
            registry=registry,
        ),
        auth_failures=Counter(
            "fleet_gateway_auth_failures",
            "Authentication failures, by reason",
            ["reason"],
            registry=registry,
        ),
        session_cache=Counter(
            "fleet_gateway_session_cache",
            "Session lookups, by result (hit|miss)",
            ["result"],
            registry=registry,
        ),
        rate_limited=Counter(
            "fleet_gateway_rate_limited",
            "Requests refused by a rate limit, by limit (auth|heartbeat|auth_failures)",
            ["limit"],
            registry=registry,
        ),
        db_pool_in_use=Gauge(
            "fleet_gateway_db_pool_in_use", "Database connections in use", registry=registry
        ),
        fleet_nodes=Gauge(
            "fleet_nodes",
            "Confirmed, listed nodes by organization and connectivity "
            "(refreshed every 15 s by each replica from one query)",
            ["org", "connectivity"],
            registry=registry,
        ),
        listener_up=Gauge(
            "fleet_gateway_listener_up",
            "1 while the LISTEN connection has proved alive within the last second, else 0",
            registry=registry,
        ),
        ready=Gauge(
            "fleet_gateway_ready",
            "1 while /readyz answers 200 (database answers, every background task alive)",
            registry=registry,
        ),
        background_task_failures=Counter(
            "fleet_gateway_background_task_failures",
            "Background tasks that died unexpectedly, by task",
            ["task"],
            registry=registry,
        ),
        gc_pause=Histogram(
            "fleet_gateway_gc_pause_seconds",
            "Pauses of Python's garbage collector (the event loop stands still meanwhile)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
            registry=registry,
        ),
    )
