"""The sweeper's statement (SPEC 3.7): housekeeping only, every lookup checks expiry itself."""

from __future__ import annotations

import datetime

from gateway.store.pool import Database
from gateway.store.records import SweepCounts


class Housekeeping:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def sweep(self, now: datetime.datetime) -> SweepCounts:
        """Delete expired challenges and sessions, expire stale enrollments and soft-delete
        the unconfirmed nodes they registered; what was removed or expired."""
        async with self._db.cursor() as cur, cur.begin():
            await cur.execute(
                """
                WITH challenges AS (
                    DELETE FROM auth_challenges WHERE expires_at <= %(now)s RETURNING 1
                ), sessions_ AS (
                    DELETE FROM sessions WHERE expires_at <= %(now)s RETURNING 1
                ), enrollments AS (
                    UPDATE pending_enrollments SET status = 'EXPIRED'
                    WHERE status IN ('OPEN', 'BOUND') AND expires_at <= %(now)s
                    RETURNING fleet_node_id
                ), nodes AS (
                    UPDATE fleet_nodes SET status = 'EXPIRED', deleted_at = %(now)s
                    WHERE id IN (SELECT fleet_node_id FROM enrollments)
                      AND status = 'AWAITING_CONFIRMATION' AND deleted_at IS NULL
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM challenges), (SELECT count(*) FROM sessions_),
                       (SELECT count(*) FROM enrollments), (SELECT count(*) FROM nodes)
                """,
                {"now": now},
            )
            row = await cur.fetchone()
        challenges, sessions, enrollments, nodes = row
        return SweepCounts(int(challenges), int(sessions), int(enrollments), int(nodes))
