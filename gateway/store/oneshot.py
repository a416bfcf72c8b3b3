"""The statements of the CLI's one-shot commands (create-org, create-admin-token): each
opens its own connection outside any pool and closes it."""

from __future__ import annotations

from gateway.store.pool import connect, mapped_errors

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
