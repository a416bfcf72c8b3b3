"""init-db's schema and the CLI's one-shot helpers, and what the tables hold (hashes only)."""

from __future__ import annotations

import hashlib

import pytest

from gateway.commands import create_admin_token
from gateway.errors import NotFound
from gateway.principals import Role
from gateway.store import oneshot, schema
from tests.support.gateway_services import (
    enroll,
    make_config,
    make_org,
    new_code,
    open_harness,
)
from tests.support.postgres import catalog, query

pytestmark = pytest.mark.asyncio


async def test_init_db_builds_the_schema_and_is_idempotent(
    empty_database: str, database_url: str
) -> None:
    """init-db on an empty database gives the template's schema; running it again
    changes nothing in the catalog."""
    await schema.migrate(empty_database)
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
    await schema.migrate(empty_database)
    await schema.migrate(empty_database)
    assert catalog(empty_database) == first
    assert catalog(database_url) == first  # the test template was built the same way


async def test_init_db_keeps_data(database_url: str) -> None:
    """Re-running init-db on a live database leaves its rows alone."""
    org_id = await oneshot.ensure_org(database_url, "acme")
    await schema.migrate(database_url)
    assert query(database_url, "SELECT id, name FROM organizations") == [(org_id, "acme")]


async def test_create_org_is_idempotent_on_name(database_url: str) -> None:
    """Creating an organization twice returns the same id."""
    first = await oneshot.ensure_org(database_url, "acme")
    assert await oneshot.ensure_org(database_url, "acme") == first
    assert await oneshot.ensure_org(database_url, "globex") != first


async def test_create_admin_token_needs_an_org(database_url: str) -> None:
    """An admin token for an organization that does not exist is refused."""
    with pytest.raises(NotFound):
        await create_admin_token(database_url, "nobody", Role.ADMIN, "")
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
    await oneshot.ensure_org(database_url, "acme")
    admin_token = await create_admin_token(database_url, "acme", Role.ADMIN, "x")
    async with open_harness(make_config(database_url)) as h:
        org = await make_org(h.services, database_url, "acme")
        node = await enroll(h.services, org, "edge-1")
        spare_code = await new_code(h.services, org)
    stored = every_value(database_url)
    for secret in (admin_token, node.api_key, node.session_token, spare_code):
        raw = secret.encode()
        assert not any(raw in value for value in stored)
        assert hashlib.sha256(raw).digest() in stored
