"""The test suite's PostgreSQL: one private cluster per session, one database per test.

The template database holds the schema as ``fleet-gateway init-db`` builds it (the
numbered migrations), so a test's database is a fast ``CREATE DATABASE ... TEMPLATE``.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import psycopg2

from gateway.dev.pgcluster import Cluster, find_bindir, make_cluster_root
from gateway.store import schema

TEMPLATE_DB = "fleet_template"
_counter = itertools.count()


def admin_sql(cluster: Cluster, sql: str) -> None:
    """Run a statement that cannot run in a transaction (CREATE/DROP DATABASE)."""
    conn = psycopg2.connect(cluster.url("postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def start_cluster() -> Cluster:
    """A new cluster (fsync off: tests need no durability) with the migrated template."""
    cluster = Cluster(root=make_cluster_root(), bindir=find_bindir())
    cluster.init()
    cluster.start(fsync=False)
    admin_sql(cluster, f"CREATE DATABASE {TEMPLATE_DB}")
    asyncio.run(schema.migrate(cluster.url(TEMPLATE_DB)))
    return cluster


def new_database(cluster: Cluster, template: str = TEMPLATE_DB) -> tuple[str, str]:
    """(name, url) of a fresh database cloned from ``template``."""
    name = f"test_{next(_counter)}"
    admin_sql(cluster, f"CREATE DATABASE {name} TEMPLATE {template}")
    return name, cluster.url(name)


def drop_database(cluster: Cluster, name: str) -> None:
    admin_sql(cluster, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def query(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read (or poke) a test database directly, outside the gateway."""
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


CATALOG = """
SELECT 'table', c.relname, c.relkind::text, '' FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
UNION ALL
SELECT 'column', table_name || '.' || column_name,
       data_type || ' ' || is_nullable, coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', indexname, indexdef, '' FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname,
       pg_get_constraintdef(oid), '' FROM pg_constraint
  WHERE connamespace = 'public'::regnamespace
ORDER BY 1, 2, 3
"""


def catalog(url: str) -> list[tuple[Any, ...]]:
    """The schema of a database as rows (tables, columns, indexes, constraints)."""
    return query(url, CATALOG)
