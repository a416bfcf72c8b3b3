"""Enrollment codes, Register and Confirm (SPEC 3.1-3.3).

``pending_enrollments.status``: OPEN -> BOUND (Register) -> CONFIRMED (Confirm) |
CANCELLED (Revoke) | EXPIRED (sweeper); OPEN -> EXPIRED (sweeper).
"""

from __future__ import annotations

import datetime

import psycopg2.errors

from gateway.errors import NameOrKeyInUse
from gateway.store.events import record_event
from gateway.store.pool import Database
from gateway.store.records import ConfirmOutcome, EventKind, NodeStatus


class EnrollmentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_code(
        self,
        org_id: int,
        token_id: int,
        code_hash: bytes,
        now: datetime.datetime,
        expires_at: datetime.datetime,
    ) -> int:
        """A new open code; its id (the pending enrollment's)."""
        row = await self._db.one(
            """
            INSERT INTO pending_enrollments
                (org_id, code_hash, created_by_token_id, created_at, expires_at)
            VALUES (%s, %s, %s, %s, %s)
            RETURNING id
            """,
            (org_id, code_hash, token_id, now, expires_at),
        )
        assert row is not None
        return int(row[0])

    async def register_node(
        self,
        code_hash: bytes,
        now: datetime.datetime,
        name: str,
        pubkey: bytes,
        fingerprint: str,
    ) -> int | None:
        """Create the node and bind the code in one transaction; the node id, or None when
        the code is unknown, used or expired. A live node with this key or name raises
        ``NameOrKeyInUse`` and rolls back, so the code stays usable."""
        async with self._db.cursor() as cur:
            try:
                async with cur.begin():
                    # FOR UPDATE serialises concurrent Registers of one code; the loser
                    # re-reads status and finds the code bound.
                    await cur.execute(
                        """
                        SELECT id, org_id FROM pending_enrollments
                        WHERE code_hash = %s AND status = 'OPEN' AND expires_at > %s
                        FOR UPDATE
                        """,
                        (code_hash, now),
                    )
                    code = await cur.fetchone()
                    if code is None:
                        return None
                    enrollment_id, org_id = code
                    await cur.execute(
                        """
                        INSERT INTO fleet_nodes
                            (org_id, name, identity_pubkey, identity_fingerprint, status,
                             created_at)
                        VALUES (%s, %s, %s, %s, %s, %s)
                        RETURNING id
                        """,
                        (
                            org_id,
                            name,
                            pubkey,
                            fingerprint,
                            NodeStatus.AWAITING_CONFIRMATION.value,
                            now,
                        ),
                    )
                    (node_id,) = await cur.fetchone()
                    await cur.execute(
                        """
                        UPDATE pending_enrollments SET status = 'BOUND', fleet_node_id = %s
                        WHERE id = %s
                        """,
                        (node_id, enrollment_id),
                    )
                    await record_event(cur, org_id, node_id, EventKind.REGISTERED, now)
                    return int(node_id)
            except psycopg2.errors.UniqueViolation as exc:
                raise NameOrKeyInUse() from exc

    async def confirm_node(
        self, org_id: int, node_id: int, now: datetime.datetime, key_hash: bytes
    ) -> ConfirmOutcome:
        """Confirm an awaiting node; only on CONFIRMED is the api key hash stored."""
        async with self._db.cursor() as cur, cur.begin():
            await cur.execute(
                """
                SELECT n.status, e.expires_at
                FROM fleet_nodes n
                LEFT JOIN pending_enrollments e
                    ON e.fleet_node_id = n.id AND e.org_id = n.org_id
                WHERE n.id = %s AND n.org_id = %s
                FOR UPDATE OF n
                """,
                (node_id, org_id),
            )
            row = await cur.fetchone()
            if row is None:
                return ConfirmOutcome.NOT_FOUND
            status, code_expires_at = NodeStatus(row[0]), row[1]
            if status is NodeStatus.REVOKED:
                return ConfirmOutcome.REVOKED
            if status is NodeStatus.EXPIRED:
                return ConfirmOutcome.CODE_EXPIRED
            if status is not NodeStatus.AWAITING_CONFIRMATION:
                return ConfirmOutcome.NOT_AWAITING
            if code_expires_at is None or code_expires_at <= now:
                return ConfirmOutcome.CODE_EXPIRED
            await cur.execute(
                """
                UPDATE fleet_nodes SET status = %s, confirmed_at = %s
                WHERE id = %s AND org_id = %s
                """,
                (NodeStatus.CONFIRMED.value, now, node_id, org_id),
            )
            await cur.execute(
                """
                UPDATE pending_enrollments SET status = 'CONFIRMED'
                WHERE fleet_node_id = %s AND status = 'BOUND'
                """,
                (node_id,),
            )
            await cur.execute(
                """
                INSERT INTO api_keys (org_id, fleet_node_id, key_hash, created_at)
                VALUES (%s, %s, %s, %s)
                """,
                (org_id, node_id, key_hash, now),
            )
            await record_event(cur, org_id, node_id, EventKind.CONFIRMED, now)
            return ConfirmOutcome.CONFIRMED
