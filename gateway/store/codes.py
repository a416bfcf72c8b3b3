"""Enrollment codes as operators manage them: create, list, revoke (SPEC 2.2, 3.8, 3.9).

A code's state is computed when read, from the gateway's clock: REVOKED (``revoked_at``),
else USED_UP (``uses = max_uses``), else EXPIRED, else OPEN.
"""

from __future__ import annotations

import datetime

import attrs

from gateway.store.pool import Database
from gateway.store.records import CodeRecord, CodeState, NodeStatus, utc


@attrs.frozen
class NewCodeRow:
    org_id: int
    token_id: int
    code_hash: bytes = attrs.field(repr=False)
    created_at: datetime.datetime
    expires_at: datetime.datetime
    pre_approved: bool
    max_uses: int


class CodeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_code(self, new: NewCodeRow) -> int:
        """A new open code; its id (the pending enrollment's)."""
        row = await self._db.one(
            """
            INSERT INTO pending_enrollments
                (org_id, code_hash, created_by_token_id, created_at, expires_at,
                 pre_approved, max_uses)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            RETURNING id
            """,
            (
                new.org_id,
                new.code_hash,
                new.token_id,
                new.created_at,
                new.expires_at,
                new.pre_approved,
                new.max_uses,
            ),
        )
        assert row is not None
        return int(row[0])

    async def list_codes(
        self,
        org_id: int,
        before_id: int | None,
        limit: int,
        include_closed: bool,
        now: datetime.datetime,
    ) -> list[CodeRecord]:
        """The organization's codes, newest first, keyset-paginated below ``before_id``;
        only open ones unless ``include_closed``."""
        rows = await self._db.all(
            """
            SELECT id, created_at, expires_at, pre_approved, max_uses, uses,
                   CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
                        WHEN uses >= max_uses THEN 'used_up'
                        WHEN expires_at <= %(now)s THEN 'expired'
                        ELSE 'open'
                   END
            FROM pending_enrollments
            WHERE org_id = %(org_id)s
              AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
              AND (%(include_closed)s
                   OR (revoked_at IS NULL AND uses < max_uses AND expires_at > %(now)s))
            ORDER BY id DESC
            LIMIT %(limit)s
            """,
            {
                "org_id": org_id,
                "before_id": before_id,
                "limit": limit,
                "include_closed": include_closed,
                "now": now,
            },
        )
        return [
            CodeRecord(
                pending_enrollment_id=int(code_id),
                created_at=utc(created_at),
                expires_at=utc(expires_at),
                pre_approved=bool(pre_approved),
                max_uses=int(max_uses),
                uses=int(uses),
                state=CodeState(state),
            )
            for code_id, created_at, expires_at, pre_approved, max_uses, uses, state in rows
        ]

    async def revoke_code(self, org_id: int, enrollment_id: int, now: datetime.datetime) -> bool:
        """Revoke the code (idempotent: the first revocation time stays) and soft-delete the
        nodes it registered that still await confirmation; False when the organization has
        no such code."""
        async with self._db.cursor() as cur, cur.begin():
            # Nodes first, codes second: the order Confirm locks them in, so the two
            # cannot deadlock. A node confirmed meanwhile drops out of this set.
            await cur.execute(
                """
                SELECT n.id FROM fleet_nodes n
                JOIN enrollment_code_nodes b ON b.fleet_node_id = n.id AND b.org_id = n.org_id
                WHERE b.pending_enrollment_id = %s AND n.org_id = %s
                  AND n.status = %s AND n.deleted_at IS NULL
                FOR UPDATE OF n
                """,
                (enrollment_id, org_id, NodeStatus.AWAITING_CONFIRMATION.value),
            )
            await cur.execute(
                """
                UPDATE pending_enrollments SET revoked_at = coalesce(revoked_at, %s),
                    status = CASE WHEN status = 'BOUND' THEN 'CANCELLED' ELSE status END
                WHERE id = %s AND org_id = %s
                RETURNING id
                """,
                (now, enrollment_id, org_id),
            )
            if await cur.fetchone() is None:
                return False
            # Statement after the code's lock: also sees a node a Register bound just
            # before we got it. Awaiting nodes hold no api key, session or challenge.
            await cur.execute(
                """
                UPDATE fleet_nodes n SET status = %s, deleted_at = %s
                FROM enrollment_code_nodes b
                WHERE b.fleet_node_id = n.id AND b.org_id = n.org_id
                  AND b.pending_enrollment_id = %s
                  AND n.status = %s AND n.deleted_at IS NULL
                """,
                (
                    NodeStatus.REVOKED.value,
                    now,
                    enrollment_id,
                    NodeStatus.AWAITING_CONFIRMATION.value,
                ),
            )
            return True
