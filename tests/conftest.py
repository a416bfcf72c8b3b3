"""Fixtures shared by the Trio and asyncio test worlds: they are sync on purpose.

One private PostgreSQL cluster per test session (``pg_cluster``); every test that
asks for ``database_url`` gets its own database, cloned from a template that holds
the schema, which takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.dev.pgcluster import Cluster
from tests.support.postgres import admin_sql, drop_database, new_database, start_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def database_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh database with the schema applied, dropped after the test."""
    name, url = new_database(pg_cluster)
    yield url
    drop_database(pg_cluster, name)


@pytest.fixture
def empty_database(pg_cluster: Cluster) -> Iterator[str]:
    """A database without any schema (what init-db finds on a first deploy), dropped after
    the test."""
    name = "empty_for_init_db"
    admin_sql(pg_cluster, f"CREATE DATABASE {name}")
    yield pg_cluster.url(name)
    drop_database(pg_cluster, name)
