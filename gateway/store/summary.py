"""GetFleetSummary's two reads (SPEC 2.2): counts computed when read, and the nodes that
went offline within the last hour and still are."""

from __future__ import annotations

import datetime

from gateway.store.nodes import node_record
from gateway.store.pool import Database
from gateway.store.records import FleetCounts, NodeRecord


class SummaryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def counts(self, org_id: int, online_since: datetime.datetime) -> FleetCounts:
        """Listed nodes awaiting confirmation, and confirmed ones by connectivity as the
        listing computes it (``online_since``: the gateway's now minus --offline-after)."""
        row = await self._db.one(
            """
            SELECT
                count(*) FILTER (WHERE status = 'AWAITING_CONFIRMATION'),
                count(*) FILTER (WHERE status = 'CONFIRMED' AND liveness <> 'STOPPED'
                                   AND last_seen_at >= %(online_since)s),
                count(*) FILTER (WHERE status = 'CONFIRMED' AND liveness <> 'STOPPED'
                                   AND last_seen_at < %(online_since)s),
                count(*) FILTER (WHERE status = 'CONFIRMED' AND liveness <> 'STOPPED'
                                   AND last_seen_at IS NULL),
                count(*) FILTER (WHERE status = 'CONFIRMED' AND liveness = 'STOPPED')
            FROM fleet_nodes
            WHERE org_id = %(org_id)s AND deleted_at IS NULL
            """,
            {"org_id": org_id, "online_since": online_since},
        )
        assert row is not None
        awaiting, online, offline, never_seen, stopped = (int(count) for count in row)
        return FleetCounts(awaiting, online, offline, never_seen, stopped)

    async def recently_offline(
        self,
        org_id: int,
        offline_since: datetime.datetime,
        online_since: datetime.datetime,
        limit: int,
    ) -> list[NodeRecord]:
        """Confirmed nodes whose OFFLINE event (the last transition: they are still offline)
        occurred at or after ``offline_since``, most recent first."""
        rows = await self._db.all(
            """
            SELECT id, name, status, identity_fingerprint, created_at, last_seen_at,
                   clock_skew_ms, liveness, agent_version, hostname, os, boot_id, python_version
            FROM fleet_nodes
            WHERE org_id = %(org_id)s AND liveness = 'OFFLINE' AND deleted_at IS NULL
              AND status = 'CONFIRMED'
              AND liveness_since >= %(offline_since)s
              AND last_seen_at < %(online_since)s
            ORDER BY liveness_since DESC, id DESC
            LIMIT %(limit)s
            """,
            {
                "org_id": org_id,
                "offline_since": offline_since,
                "online_since": online_since,
                "limit": limit,
            },
        )
        return [node_record(row) for row in rows]
