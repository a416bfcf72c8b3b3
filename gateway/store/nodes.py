"""The fleet as operators see it: the node listing and revocation (SPEC 2.2, 3.5, 4.5, 4.10)."""

from __future__ import annotations

import datetime

from gateway.store.events import record_event
from gateway.store.notifications import Invalidation, InvalidationKind, notify
from gateway.store.pool import Database, Row
from gateway.store.records import (
    ConnectivityFilter,
    EventKind,
    Liveness,
    NodeFactsRecord,
    NodeRecord,
    NodeStatus,
    utc,
    utc_or_none,
)


def node_record(row: Row) -> NodeRecord:
    """A row of id, name, status, identity_fingerprint, created_at, last_seen_at,
    clock_skew_ms, liveness and the five facts columns."""
    node_id, name, status, fingerprint, created_at, last_seen_at, skew_ms, liveness = row[:8]
    facts = row[8:13]
    return NodeRecord(
        fleet_node_id=int(node_id),
        name=str(name),
        status=NodeStatus(status),
        identity_fingerprint=str(fingerprint),
        created_at=utc(created_at),
        last_seen_at=utc_or_none(last_seen_at),
        clock_skew_ms=None if skew_ms is None else int(skew_ms),
        liveness=Liveness(liveness),
        facts=None if facts[0] is None else NodeFactsRecord(*(str(fact) for fact in facts)),
    )


class NodeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_nodes(
        self,
        org_id: int,
        before_id: int | None,
        limit: int,
        connectivity: ConnectivityFilter,
        online_since: datetime.datetime,
    ) -> list[NodeRecord]:
        """Listed (live) nodes, newest first, keyset-paginated below ``before_id``;
        ``online_since`` is the gateway's now minus ``--offline-after``."""
        rows = await self._db.all(
            """
            SELECT id, name, status, identity_fingerprint, created_at, last_seen_at,
                   clock_skew_ms, liveness, agent_version, hostname, os, boot_id, python_version
            FROM fleet_nodes
            WHERE org_id = %(org_id)s
              AND deleted_at IS NULL
              AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
              AND CASE %(connectivity)s::int
                    WHEN 1 THEN last_seen_at >= %(online_since)s::timestamptz
                                AND liveness <> 'STOPPED'
                    WHEN 2 THEN last_seen_at < %(online_since)s::timestamptz
                                AND liveness <> 'STOPPED'
                    WHEN 3 THEN last_seen_at IS NULL
                    WHEN 4 THEN liveness = 'STOPPED'
                    ELSE true
                  END
            ORDER BY id DESC
            LIMIT %(limit)s
            """,
            {
                "org_id": org_id,
                "before_id": before_id,
                "limit": limit,
                "connectivity": connectivity.value,
                "online_since": online_since,
            },
        )
        return [node_record(row) for row in rows]

    async def revoke_node(self, org_id: int, node_id: int, now: datetime.datetime) -> bool:
        """Revoke, soft-delete and end every credential of a listed node; NOTIFY on commit.
        False when no listed node of the organization has this id."""
        async with self._db.cursor() as cur, cur.begin():
            await cur.execute(
                """
                UPDATE fleet_nodes SET status = %s, deleted_at = %s
                WHERE id = %s AND org_id = %s AND deleted_at IS NULL
                RETURNING id
                """,
                (NodeStatus.REVOKED.value, now, node_id, org_id),
            )
            if await cur.fetchone() is None:
                return False
            await cur.execute(
                """
                UPDATE pending_enrollments SET status = 'CANCELLED'
                WHERE fleet_node_id = %s AND status = 'BOUND'
                """,
                (node_id,),
            )
            await cur.execute(
                """
                UPDATE api_keys SET revoked_at = %s
                WHERE fleet_node_id = %s AND revoked_at IS NULL
                """,
                (now, node_id),
            )
            await cur.execute("DELETE FROM sessions WHERE fleet_node_id = %s", (node_id,))
            await cur.execute("DELETE FROM auth_challenges WHERE fleet_node_id = %s", (node_id,))
            await record_event(cur, org_id, node_id, EventKind.REVOKED, now)
            await notify(cur, Invalidation(InvalidationKind.REVOKE, node_id))
            return True
