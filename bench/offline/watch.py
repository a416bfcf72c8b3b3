"""What the offline benchmark reads from PostgreSQL itself (synchronous, run in a thread):
the OFFLINE events as they appear, the offline scan's statements in ``pg_stat_statements``,
and the EXPLAIN of the fleet_nodes gauge's query."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import attrs
import psycopg2

from gateway.store.liveness import COUNT_BY_ORG

# The offline scan's two statements (gateway/store/liveness.py), one pair per batch, and
# the fleet_nodes gauge's query (every 15 s).
SCAN_PATTERN = "%WITH due AS%UPDATE fleet_nodes n%"
LOCK_PATTERN = "%pg_try_advisory_xact_lock%"
GAUGE_PATTERN = "%SELECT o.name, c.liveness%"


def _rows(
    url: str, sql: str, params: Sequence[object] | dict[str, object] = ()
) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


@attrs.frozen
class ScanCounters:
    """pg_stat_statements' cumulative figures for the offline scan's statements."""

    scan_calls: int
    scan_ms: float
    lock_calls: int
    gauge_calls: int
    gauge_ms: float

    def minus(self, before: ScanCounters) -> ScanCounters:
        return ScanCounters(
            self.scan_calls - before.scan_calls,
            round(self.scan_ms - before.scan_ms, 3),
            self.lock_calls - before.lock_calls,
            self.gauge_calls - before.gauge_calls,
            round(self.gauge_ms - before.gauge_ms, 3),
        )


def scan_counters(url: str) -> ScanCounters:
    """Read at once: pg_stat_statements counts as each statement ends (unlike the
    cumulative statistics, which lag up to 10 s)."""
    ((calls, ms, locks, gauge_calls, gauge_ms),) = _rows(
        url,
        """
        SELECT coalesce(sum(calls) FILTER (WHERE query LIKE %(scan)s), 0),
               coalesce(sum(total_exec_time) FILTER (WHERE query LIKE %(scan)s), 0),
               coalesce(sum(calls) FILTER (WHERE query LIKE %(lock)s), 0),
               coalesce(sum(calls) FILTER (WHERE query LIKE %(gauge)s), 0),
               coalesce(sum(total_exec_time) FILTER (WHERE query LIKE %(gauge)s), 0)
        FROM pg_stat_statements
        """,
        {"scan": SCAN_PATTERN, "lock": LOCK_PATTERN, "gauge": GAUGE_PATTERN},
    )
    return ScanCounters(
        int(str(calls)), float(str(ms)), int(str(locks)), int(str(gauge_calls)),
        float(str(gauge_ms)),
    )  # fmt: skip


def has_events(url: str) -> bool:
    """Whether the gateway under test records events (its schema has the table)."""
    ((found,),) = _rows(url, "SELECT to_regclass('fleet_node_events') IS NOT NULL")
    return bool(found)


def newest_event_id(url: str) -> int:
    ((newest,),) = _rows(url, "SELECT coalesce(max(id), 0) FROM fleet_node_events")
    return int(str(newest))


@attrs.frozen
class Recorded:
    event_id: int
    fleet_node_id: int
    occurred_at: float  # epoch seconds: when the node crossed --offline-after
    seen_at: float  # epoch seconds: the poll that first saw the event


def new_offline_events(url: str, after_id: int, seen_at: float) -> list[Recorded]:
    rows = _rows(
        url,
        "SELECT id, fleet_node_id, occurred_at FROM fleet_node_events"
        " WHERE kind = 'OFFLINE' AND id > %s ORDER BY id",
        (after_id,),
    )
    return [Recorded(int(str(i)), int(str(node)), _epoch(at), seen_at) for i, node, at in rows]


def online_events_since(url: str, after_id: int) -> int:
    ((count,),) = _rows(
        url, "SELECT count(*) FROM fleet_node_events WHERE kind = 'ONLINE' AND id > %s", (after_id,)
    )
    return int(str(count))


def last_crossing(url: str, node_ids: Sequence[int], offline_after_seconds: float) -> float:
    """Epoch seconds at which the last of ``node_ids`` crosses --offline-after."""
    ((newest,),) = _rows(
        url, "SELECT max(last_seen_at) FROM fleet_nodes WHERE id = ANY(%s)", (list(node_ids),)
    )
    return _epoch(newest) + offline_after_seconds


def explain_gauges(url: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the gauge query, on the database as it is."""
    plan = _rows(url, "EXPLAIN (ANALYZE, BUFFERS) " + COUNT_BY_ORG)
    return "\n".join(str(line) for (line,) in plan)


def vacuum_analyze(url: str) -> None:
    _rows(url, "VACUUM ANALYZE fleet_nodes")


def _epoch(moment: object) -> float:
    assert isinstance(moment, datetime.datetime)
    return moment.timestamp()
