"""Fixtures shared by the Trio and asyncio test worlds: they are sync on purpose.

One private PostgreSQL cluster per test session (``pg_cluster``); every test that
asks for ``database_url`` gets its own database, cloned from a template that holds
the schema, which takes milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from gateway.pgcluster import Cluster, find_bindir, make_cluster_root

SCHEMA = Path(__file__).resolve().parent.parent / "schema.sql"
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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = Cluster(root=make_cluster_root(), bindir=find_bindir())
    cluster.init()
    cluster.start(fsync=False)
    try:
        admin_sql(cluster, f"CREATE DATABASE {TEMPLATE_DB}")
        conn = psycopg2.connect(cluster.url(TEMPLATE_DB))
        try:
            with conn, conn.cursor() as cur:
                cur.execute(SCHEMA.read_text())
        finally:
            conn.close()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def database_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh database with the schema applied, dropped after the test."""
    name = f"test_{next(_counter)}"
    admin_sql(pg_cluster, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield pg_cluster.url(name)
    admin_sql(pg_cluster, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
