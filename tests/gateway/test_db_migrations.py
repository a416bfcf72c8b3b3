"""Numbered schema migrations (SPEC 8): in-place upgrades, concurrent init-db runs,
``init-db --check``, and ``serve`` refusing a database older than itself."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from gateway.store import schema
from tests.support.postgres import catalog, query

FIRST_RELEASE = schema.known_migrations()[0]


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


def ledger(url: str) -> list[tuple[int, str]]:
    return [(int(v), str(n)) for v, n in query(url, "SELECT version, name FROM schema_migrations")]


@pytest.mark.asyncio
async def test_a_database_of_the_first_release_upgrades_in_place(
    empty_database: str, database_url: str
) -> None:
    """A database built by the first release's init-db (schema.sql, no ledger) is
    upgraded by init-db with every row intact, to the same schema as a new one."""
    query(empty_database, FIRST_RELEASE.sql)  # what the first release's init-db ran
    query(empty_database, "INSERT INTO organizations (name) VALUES ('acme')")
    query(
        empty_database,
        "INSERT INTO admin_tokens (org_id, token_hash, role, label) "
        "SELECT id, sha256('t'), 'admin', 'ops' FROM organizations",
    )
    before = query(empty_database, "SELECT id, name, created_at FROM organizations")

    applied = await schema.migrate(empty_database)

    assert [m.version for m in applied] == [m.version for m in schema.known_migrations()]
    assert query(empty_database, "SELECT id, name, created_at FROM organizations") == before
    assert query(empty_database, "SELECT label FROM admin_tokens") == [("ops",)]
    assert ledger(empty_database) == [(m.version, m.name) for m in schema.known_migrations()]
    assert catalog(empty_database) == catalog(database_url)
    assert await schema.missing_migrations(empty_database) == ()


@pytest.mark.asyncio
async def test_two_concurrent_init_db_runs_leave_one_consistent_schema(
    empty_database: str, database_url: str
) -> None:
    """Two replicas running init-db at once: one applies, the other waits and finds
    nothing left; each migration is recorded once."""
    first, second = await asyncio.gather(
        schema.migrate(empty_database), schema.migrate(empty_database)
    )
    every = schema.known_migrations()
    assert sorted([*first, *second], key=lambda m: m.version) == list(every)
    assert ledger(empty_database) == [(m.version, m.name) for m in every]
    assert catalog(empty_database) == catalog(database_url)


def test_init_db_check_names_what_is_missing(empty_database: str) -> None:
    """--check changes nothing: 78 naming the missing migrations, then 0 once current."""
    missing = gateway("init-db", "--check", "--database-url", empty_database)
    assert missing.returncode == 78, missing.stderr
    assert FIRST_RELEASE.label in missing.stderr
    assert query(empty_database, "SELECT to_regclass('schema_migrations')") == [(None,)]
    assert gateway("init-db", "--database-url", empty_database).returncode == 0
    current = gateway("init-db", "--check", "--database-url", empty_database)
    assert current.returncode == 0, current.stderr
    assert "Traceback" not in missing.stderr + current.stderr


def test_serve_refuses_a_database_older_than_itself(empty_database: str) -> None:
    """serve exits 78 (naming init-db) instead of serving a schema it does not know."""
    query(empty_database, FIRST_RELEASE.sql)  # a database the first release left
    done = gateway("serve", "--port", "0", "--database-url", empty_database)
    assert done.returncode == 78, done.stderr
    assert "init-db" in done.stderr and "Traceback" not in done.stderr
