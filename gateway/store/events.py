"""Fleet node events (SPEC 4.9): recording one inside a caller's transaction, listing, retention.

Event ids are reserved with ``reserve_fleet_node_event_ids`` (migration 0002) in the
transaction that inserts the events, whose lock on the id row lasts until it commits: ids
become visible in increasing order, so a reader paging on "after id N" (``fleetctl events
--follow``) never skips an event whose transaction committed after a later id's. Every
writer reserves last in its transaction (no deadlock with the node rows it holds): here,
and in the statements that record events in bulk (``last_seen.py``, ``liveness.py``).
"""

from __future__ import annotations

import datetime

import aiopg

from gateway.store.pool import Database
from gateway.store.records import EventKind, EventRecord, utc


async def record_event(
    cur: aiopg.Cursor, org_id: int, node_id: int, kind: EventKind, now: datetime.datetime
) -> None:
    """Record one event in the cursor's transaction; call it last in that transaction."""
    await cur.execute(
        """
        INSERT INTO fleet_node_events (id, org_id, fleet_node_id, kind, occurred_at)
        VALUES (reserve_fleet_node_event_ids(1) + 1, %s, %s, %s, %s)
        """,
        (org_id, node_id, kind.value, now),
    )


class EventStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_events(
        self, org_id: int, after_id: int, node_id: int | None, limit: int
    ) -> list[EventRecord]:
        """The organization's events after ``after_id``, oldest first, optionally one node's."""
        rows = await self._db.all(
            """
            SELECT id, fleet_node_id, kind, occurred_at
            FROM fleet_node_events
            WHERE org_id = %(org_id)s AND id > %(after_id)s
              AND (%(node_id)s::bigint IS NULL OR fleet_node_id = %(node_id)s::bigint)
            ORDER BY id
            LIMIT %(limit)s
            """,
            {"org_id": org_id, "after_id": after_id, "node_id": node_id, "limit": limit},
        )
        return [
            EventRecord(int(event_id), int(fleet_node_id), EventKind(kind), utc(occurred_at))
            for event_id, fleet_node_id, kind, occurred_at in rows
        ]

    async def node_exists(self, org_id: int, node_id: int) -> bool:
        """Whether the organization ever had this node (revoked and expired ones included:
        their events stay readable)."""
        row = await self._db.one(
            "SELECT 1 FROM fleet_nodes WHERE id = %s AND org_id = %s", (node_id, org_id)
        )
        return row is not None

    async def delete_older_than(self, cutoff: datetime.datetime, limit: int) -> int:
        """Delete up to ``limit`` events that occurred before ``cutoff``; how many went."""
        row = await self._db.one(
            """
            WITH doomed AS (
                SELECT id FROM fleet_node_events WHERE occurred_at < %s
                ORDER BY occurred_at LIMIT %s
            ), deleted AS (
                DELETE FROM fleet_node_events e USING doomed WHERE e.id = doomed.id RETURNING 1
            )
            SELECT count(*) FROM deleted
            """,
            (cutoff, limit),
        )
        assert row is not None
        return int(row[0])
