"""The offline scan's statement and the fleet_nodes gauge's query (SPEC 2.3, 4.9).

The scan marks ONLINE nodes whose ``last_seen_at`` is older than ``--offline-after`` as
OFFLINE and records their OFFLINE events in ONE statement, a batch at a time, in a
transaction that first takes a transaction-level advisory lock without waiting: one
replica scans at a time, and a replica killed half-way leaves nothing behind (its
transaction rolls back whole), so each transition is recorded exactly once.
"""

from __future__ import annotations

import datetime

from gateway.store.pool import Database
from gateway.store.records import Liveness, LivenessCount

# pg_try_advisory_xact_lock key of the offline scan ("offline"); init-db uses another.
SCAN_LOCK_KEY = 0x6F66666C696E65


# A constant only so that tests/gateway/test_fleet_gauges.py can EXPLAIN what runs.
# Counted by org_id inside, over the partial index (org_id, liveness) alone (an index-only
# scan once the table is vacuumed), then named: every organization appears.
COUNT_BY_ORG = """
SELECT o.name, c.liveness, coalesce(c.nodes, 0)
FROM organizations o
LEFT JOIN (
    SELECT org_id, liveness, count(*) AS nodes
    FROM fleet_nodes
    WHERE deleted_at IS NULL AND status = 'CONFIRMED'
    GROUP BY org_id, liveness
) c ON c.org_id = o.id
"""


class LivenessStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def mark_offline(
        self, now: datetime.datetime, offline_after_seconds: float, limit: int
    ) -> int | None:
        """Mark up to ``limit`` nodes OFFLINE and record an OFFLINE event for each, at the
        moment their ``last_seen_at`` became older than ``offline_after_seconds``; how many,
        or None when another replica is scanning. Rows another transaction holds (a
        heartbeat being written) are skipped: that write decides them."""
        offline_after = datetime.timedelta(seconds=offline_after_seconds)
        async with self._db.cursor() as cur, cur.begin():
            await cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (SCAN_LOCK_KEY,))
            (locked,) = await cur.fetchone()
            if not locked:
                return None
            await cur.execute(
                """
                WITH due AS (
                    SELECT id FROM fleet_nodes
                    WHERE liveness = 'ONLINE' AND deleted_at IS NULL AND status = 'CONFIRMED'
                      AND last_seen_at < %(cutoff)s
                    LIMIT %(limit)s
                    FOR UPDATE SKIP LOCKED
                ), marked AS (
                    UPDATE fleet_nodes n
                    SET liveness = 'OFFLINE', liveness_since = n.last_seen_at + %(offline)s
                    FROM due
                    WHERE n.id = due.id
                    RETURNING n.id, n.org_id, n.liveness_since
                ), new_events AS (
                    SELECT id, org_id, liveness_since,
                           row_number() OVER (ORDER BY liveness_since, id) AS n
                    FROM marked
                ), event_ids AS (
                    SELECT reserve_fleet_node_event_ids(count(*)) AS before_first
                    FROM new_events HAVING count(*) > 0
                ), recorded AS (
                    INSERT INTO fleet_node_events (id, org_id, fleet_node_id, kind, occurred_at)
                    SELECT event_ids.before_first + e.n, e.org_id, e.id, 'OFFLINE',
                           e.liveness_since
                    FROM new_events e CROSS JOIN event_ids
                )
                SELECT count(*) FROM new_events
                """,
                {"cutoff": now - offline_after, "offline": offline_after, "limit": limit},
            )
            (recorded,) = await cur.fetchone()
            return int(recorded)

    async def count_by_org(self) -> list[LivenessCount]:
        """Confirmed, listed nodes by organization and recorded liveness: one pass over
        ``fleet_nodes_confirmed_liveness``; every organization appears."""
        rows = await self._db.all(COUNT_BY_ORG)
        return [
            LivenessCount(str(name), None if liveness is None else Liveness(liveness), int(count))
            for name, liveness, count in rows
        ]
