"""The benchmark's private PostgreSQL: a throw-away cluster (``gateway.dev.pgcluster``, run
as the ``postgres`` user when we are root, like tests/conftest.py) with
``pg_stat_statements`` preloaded, so UPDATE statements are counted by PostgreSQL itself.

Seeding runs with fsync off (it is set-up, not measurement); the measured phases run
on a restarted cluster with fsync on, as production would, unless ``fsync=False``.
Synchronous on purpose: used before and after the event loop of the measurement.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import attrs
import psycopg2

from bench.heartbeats.gateway_proc import gateway_command
from gateway.dev.pgcluster import Cluster, find_bindir, make_cluster_root

DB_NAME = "fleet_bench"
# The gateway's group-commit statement (gateway/store/last_seen.py).
WRITE_STATEMENT_PATTERN = "%WITH v AS%UPDATE fleet_nodes n%"
SETTLE_QUIET_SECONDS = 11.0
SETTLE_POLL_SECONDS = 0.5
SETTLE_LIMIT_SECONDS = 40.0
EXTRA_SETTINGS = (
    "shared_preload_libraries = 'pg_stat_statements'\n"
    "pg_stat_statements.track = top\n"
    "max_connections = 200\n"
)


@attrs.frozen
class PgCounters:
    """PostgreSQL's own cumulative counters at one moment."""

    fleet_nodes_updated_rows: int  # pg_stat_user_tables.n_tup_upd of fleet_nodes
    fleet_nodes_hot_updated_rows: int  # ... n_tup_hot_upd: updates that touched no index
    xact_commit: int  # pg_stat_database.xact_commit of the bench database
    write_statements: int  # pg_stat_statements calls of the group-commit UPDATE
    write_statement_rows: int  # rows those statements returned (one per queued node)
    write_statement_ms: float  # their total execution time inside PostgreSQL


def _execute(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True  # a fresh statistics snapshot per statement
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


@contextlib.contextmanager
def open_database(
    *, fsync: bool = True, settle_quiet_seconds: float = SETTLE_QUIET_SECONDS
) -> Iterator[BenchDatabase]:
    """A fresh cluster and database with the schema; destroyed on exit."""
    cluster = Cluster(root=make_cluster_root(), bindir=find_bindir())
    try:
        cluster.init()
        with (cluster.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(EXTRA_SETTINGS)
        cluster.start(fsync=False)
        _execute(cluster.url(), f"CREATE DATABASE {DB_NAME}")
        bench = BenchDatabase(cluster, fsync, settle_quiet_seconds)
        bench.gateway_cli("init-db")
        _execute(bench.url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        yield bench
    finally:
        cluster.destroy()


class BenchDatabase:
    """The running cluster; counts its own statistics reads (each commits once)."""

    def __init__(self, cluster: Cluster, fsync: bool, settle_quiet_seconds: float) -> None:
        self.cluster = cluster
        self.fsync = fsync
        self.settle_quiet_seconds = settle_quiet_seconds
        self.reads = 0

    @property
    def url(self) -> str:
        return self.cluster.url(DB_NAME)

    def gateway_cli(self, *args: str) -> str:
        """Run a one-shot ``fleet-gateway`` command (the product's public CLI) on this
        database; its standard output."""
        done = subprocess.run(
            [*gateway_command(), "--database-url", self.url, *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"fleet-gateway {args[0]} failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    def postmaster_pid(self) -> int:
        return int((self.cluster.data_dir / "postmaster.pid").read_text().split()[0])

    def prepare_for_measurement(self) -> None:
        """After seeding: ANALYZE, checkpoint, restart with the measured durability."""
        _execute(self.url, "VACUUM ANALYZE")
        _execute(self.url, "CHECKPOINT")
        self.cluster.stop()
        self.cluster.start(fsync=self.fsync)

    def counters(self) -> PgCounters:
        self.reads += 1
        rows = _execute(self.url, _COUNTERS_SQL, (WRITE_STATEMENT_PATTERN,) * 3)
        upd, hot, xacts, calls, stmt_rows, stmt_ms = rows[0]
        return PgCounters(
            int(str(upd or 0)), int(str(hot or 0)), int(str(xacts or 0)), int(str(calls)),
            int(str(stmt_rows)), float(str(stmt_ms)),
        )  # fmt: skip

    def settled_counters(self) -> tuple[PgCounters, int]:
        """The counters once every backend flushed its statistics; and ``self.reads``.

        A backend that flushed less than a second ago defers its next flush until it has
        been idle for PGSTAT_IDLE_INTERVAL (10 s, PostgreSQL 15 pgstat.c), so the counters
        are read until they stayed unchanged for a little longer than that
        (``settle_quiet_seconds``; shorter only where exact counts do not matter, as in
        the smoke test), at most SETTLE_LIMIT_SECONDS. Each read is one transaction of
        our own: a read that moved only xact_commit, by at most 2, still counts as
        unchanged."""
        deadline = time.monotonic() + SETTLE_LIMIT_SECONDS
        last = self.counters()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(SETTLE_POLL_SECONDS)
            current = self.counters()
            moved = attrs.evolve(current, xact_commit=last.xact_commit) != last
            if moved or current.xact_commit - last.xact_commit > 2:
                stable_since = time.monotonic()
            last = current
            if time.monotonic() - stable_since >= self.settle_quiet_seconds:
                break
        return last, self.reads


_COUNTERS_SQL = """
SELECT
  (SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'fleet_nodes'),
  (SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'fleet_nodes'),
  (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
  (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s),
  (SELECT coalesce(sum(rows), 0) FROM pg_stat_statements WHERE query LIKE %s),
  (SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements WHERE query LIKE %s)
"""
