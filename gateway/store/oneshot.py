"""The statements of the CLI's one-shot commands (create-org, create-admin-token,
list-admin-tokens, revoke-admin-token): each opens its own connection outside any pool and
closes it."""

from __future__ import annotations

import datetime

from gateway.principals import Role
from gateway.store.pool import connect, mapped_errors
from gateway.store.records import AdminTokenSummary, utc, utc_or_none

TIMEOUT_SECONDS = 10.0


async def ensure_org(database_url: str, name: str) -> int:
    """The organization's id, creating it if needed (idempotent on name)."""
    async with connect(database_url, TIMEOUT_SECONDS) as conn, conn.cursor() as cur:
        with mapped_errors():
            async with cur.begin():
                await cur.execute(
                    """
                    INSERT INTO organizations (name) VALUES (%s)
                    ON CONFLICT (name) DO NOTHING RETURNING id
                    """,
                    (name,),
                )
                row = await cur.fetchone()
                if row is None:
                    await cur.execute("SELECT id FROM organizations WHERE name = %s", (name,))
                    row = await cur.fetchone()
                return int(row[0])


async def insert_admin_token(
    database_url: str, org_name: str, token_hash: bytes, role: str, label: str
) -> int | None:
    """The new token's id, or None when the organization does not exist."""
    async with connect(database_url, TIMEOUT_SECONDS) as conn, conn.cursor() as cur:
        with mapped_errors():
            await cur.execute(
                """
                INSERT INTO admin_tokens (org_id, token_hash, role, label)
                SELECT id, %s, %s, %s FROM organizations WHERE name = %s
                RETURNING id
                """,
                (token_hash, role, label, org_name),
            )
            row = await cur.fetchone()
            return None if row is None else int(row[0])


async def list_admin_tokens(database_url: str, org_name: str) -> list[AdminTokenSummary] | None:
    """The organization's admin tokens, revoked ones included, oldest first; None when
    the organization does not exist."""
    async with connect(database_url, TIMEOUT_SECONDS) as conn, conn.cursor() as cur:
        with mapped_errors():
            await cur.execute("SELECT id FROM organizations WHERE name = %s", (org_name,))
            org = await cur.fetchone()
            if org is None:
                return None
            await cur.execute(
                """
                SELECT id, role, label, created_at, revoked_at FROM admin_tokens
                WHERE org_id = %s ORDER BY id
                """,
                (org[0],),
            )
            rows = await cur.fetchall()
    return [
        AdminTokenSummary(int(token_id), Role(role), str(label), utc(created), utc_or_none(revoked))
        for token_id, role, label, created, revoked in rows
    ]


async def revoke_admin_token(database_url: str, token_id: int, now: datetime.datetime) -> bool:
    """Revoke the token (idempotent: a revoked token keeps its first revocation time);
    False when there is no token with this id. Admin tokens are looked up in the database
    on every call, so every replica refuses it from its next call on."""
    async with connect(database_url, TIMEOUT_SECONDS) as conn, conn.cursor() as cur:
        with mapped_errors():
            await cur.execute(
                """
                UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, %s)
                WHERE id = %s RETURNING id
                """,
                (now, token_id),
            )
            return await cur.fetchone() is not None
