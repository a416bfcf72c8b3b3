"""Numbered schema migrations (SPEC 8): ``migrations/NNNN_name.sql``, applied in order.

``migrate`` applies the ones a database lacks, each in its own transaction and recorded in
``schema_migrations``, under a session advisory lock so two replicas running ``init-db``
at once cannot collide (the second waits, then finds nothing left to do). Migration 1 is
the schema of the first release, written with ``IF NOT EXISTS``: a database that release
created gets it recorded without a change. A migration, once released, is never edited:
a schema change is a new file.
"""

from __future__ import annotations

import importlib.resources
import re

import attrs

from gateway.store.pool import connect, mapped_errors

TIMEOUT_SECONDS = 60.0
LOCK_KEY = 0x666C656574  # "fleet": serialises concurrent init-db runs
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str = attrs.field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def known_migrations() -> tuple[Migration, ...]:
    """Every migration this release ships, in order (numbered 1, 2, ... without gaps)."""
    folder = importlib.resources.files("gateway.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError("schema migrations must be numbered 1, 2, 3, ... without gaps")
    return tuple(found)


async def missing_migrations(database_url: str) -> tuple[Migration, ...]:
    """The migrations this release ships that the database has not recorded."""
    async with connect(database_url, TIMEOUT_SECONDS) as conn, conn.cursor() as cur:
        with mapped_errors():
            await cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            (has_ledger,) = await cur.fetchone()
            applied: set[int] = set()
            if has_ledger:
                await cur.execute("SELECT version FROM schema_migrations")
                applied = {int(version) for (version,) in await cur.fetchall()}
    return tuple(m for m in known_migrations() if m.version not in applied)


async def migrate(database_url: str) -> tuple[Migration, ...]:
    """Apply the missing migrations in order; those applied by this call."""
    applied_now = []
    async with connect(database_url, TIMEOUT_SECONDS) as conn, conn.cursor() as cur:
        with mapped_errors():
            await cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            try:
                async with cur.begin():
                    await cur.execute(_CREATE_LEDGER)
                await cur.execute("SELECT version FROM schema_migrations")
                applied = {int(version) for (version,) in await cur.fetchall()}
                for migration in known_migrations():
                    if migration.version in applied:
                        continue
                    async with cur.begin():
                        await cur.execute(migration.sql)
                        await cur.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (migration.version, migration.name),
                        )
                    applied_now.append(migration)
            finally:
                await cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return tuple(applied_now)
