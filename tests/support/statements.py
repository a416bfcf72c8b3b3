"""A private PostgreSQL cluster that counts statements (pg_stat_statements), for the tests
that assert how many database round trips a load costs."""

from __future__ import annotations

import attrs

from gateway.dev.pgcluster import Cluster
from tests.support.postgres import admin_sql, query, start_cluster


def start_counting_cluster() -> Cluster:
    """Like the suite's cluster (migrated template included), with pg_stat_statements."""
    cluster = start_cluster()
    admin_sql(cluster, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    cluster.stop()
    cluster.start(fsync=False)
    admin_sql(cluster, "CREATE EXTENSION pg_stat_statements")
    return cluster


@attrs.frozen
class CountedDatabase:
    cluster: Cluster
    name: str
    url: str

    def reset(self) -> None:
        admin_sql(self.cluster, "SELECT pg_stat_statements_reset()")

    def calls(self, like: str = "%") -> int:
        """Statements run in this database since the last reset whose normalized text is
        LIKE ``like`` (constants become $1, $2, ...)."""
        rows = query(
            self.cluster.url("postgres"),
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s AND s.query LIKE %s",
            (self.name, like),
        )
        return int(rows[0][0])
