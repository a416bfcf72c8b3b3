"""Confirm (SPEC 3.3); Register is ``gateway.store.registration``, codes ``gateway.store.codes``.

``pending_enrollments.status`` of a confirmation code: OPEN -> BOUND (Register) -> CONFIRMED
(Confirm) | CANCELLED (Revoke) | EXPIRED (sweeper); OPEN -> EXPIRED (sweeper).
"""

from __future__ import annotations

import datetime

from gateway.store.events import record_event
from gateway.store.pool import Database
from gateway.store.records import ConfirmOutcome, EventKind, NodeStatus


class EnrollmentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

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
