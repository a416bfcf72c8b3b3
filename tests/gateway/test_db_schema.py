"""schema.sql and the CLI's one-shot helpers, and what the tables hold (hashes only)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from service_support import enroll, make_config, make_org, new_code, open_harness, query

from gateway import runtime as rt
from gateway.errors import NotFound
from gateway.pgcluster import Cluster
from gateway.principals import Role

pytestmark = pytest.mark.asyncio

_fresh = itertools.count()

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
    return query(url, CATALOG)


@pytest.fixture
def empty_database(pg_cluster: Cluster) -> Iterator[str]:
    """A database without the schema, dropped after the test."""
    name = f"empty_{next(_fresh)}"

    def admin(sql: str) -> None:
        conn = psycopg2.connect(pg_cluster.url("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    admin(f"CREATE DATABASE {name}")
    yield pg_cluster.url(name)
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_init_db_builds_the_schema_and_is_idempotent(
    empty_database: str, database_url: str
) -> None:
    """init-db on an empty database gives the template's schema; running it again
    changes nothing in the catalog."""
    await rt.init_db(empty_database)
    first = catalog(empty_database)
    assert {row[1] for row in first if row[0] == "table"} >= {
        "organizations",
        "admin_tokens",
        "fleet_nodes",
        "pending_enrollments",
        "api_keys",
        "auth_challenges",
        "sessions",
    }
    await rt.init_db(empty_database)
    await rt.init_db(empty_database)
    assert catalog(empty_database) == first
    assert catalog(database_url) == first  # the test template was built from the same file


async def test_init_db_keeps_data(database_url: str) -> None:
    """Re-running init-db on a live database leaves its rows alone."""
    org_id = await rt.create_org(database_url, "acme")
    await rt.init_db(database_url)
    assert query(database_url, "SELECT id, name FROM organizations") == [(org_id, "acme")]


async def test_create_org_is_idempotent_on_name(database_url: str) -> None:
    """Creating an organization twice returns the same id."""
    first = await rt.create_org(database_url, "acme")
    assert await rt.create_org(database_url, "acme") == first
    assert await rt.create_org(database_url, "globex") != first


async def test_create_admin_token_needs_an_org(database_url: str) -> None:
    """An admin token for an organization that does not exist is refused."""
    with pytest.raises(NotFound):
        await rt.create_admin_token(database_url, "nobody", Role.ADMIN, "")
    assert query(database_url, "SELECT count(*) FROM admin_tokens") == [(0,)]


def every_value(url: str) -> list[bytes]:
    """Every non-null value of every column of every table, as bytes."""
    tables = [
        row[0]
        for row in query(
            url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    ]
    values: list[bytes] = []
    for table in tables:
        for row in query(url, f'SELECT * FROM "{table}"'):
            for cell in row:
                if isinstance(cell, memoryview):
                    values.append(bytes(cell))
                elif cell is not None:
                    values.append(str(cell).encode())
    return values


async def test_secrets_are_stored_only_as_sha256(database_url: str) -> None:
    """No table holds a code, api key, session token or admin token in plaintext; each
    is stored as its SHA-256."""
    await rt.create_org(database_url, "acme")
    admin_token = await rt.create_admin_token(database_url, "acme", Role.ADMIN, "x")
    async with open_harness(make_config(database_url)) as h:
        org = await make_org(h.runtime, database_url, "acme")
        node = await enroll(h.runtime, org, "edge-1")
        spare_code = await new_code(h.runtime, org)
    stored = every_value(database_url)
    for secret in (admin_token, node.api_key, node.session_token, spare_code):
        raw = secret.encode()
        assert not any(raw in value for value in stored)
        assert hashlib.sha256(raw).digest() in stored
