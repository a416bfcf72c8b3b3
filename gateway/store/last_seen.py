"""The last_seen write of a group-commit flush: one statement for the whole batch (SPEC 4.1-4.3)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.pool import Database
from gateway.store.records import LastSeenResult, LastSeenWrite, utc_or_none


class LastSeenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(
        self, writes: Sequence[LastSeenWrite], debounce_seconds: float
    ) -> list[LastSeenResult]:
        """Advance ``last_seen_at`` (and the clock skew) of every node in ``writes`` that
        is live, confirmed and not written within ``debounce_seconds`` (0: always).

        The debounce predicate is in the UPDATE itself, so replicas sharing the database
        write once per window. The last SELECT reads the pre-statement snapshot: ``live``
        tells a node deleted meanwhile (not_found) from one another replica wrote recently.
        """
        rows = await self._db.all(
            """
            WITH v AS (
                SELECT * FROM unnest(%(ids)s::bigint[], %(seen)s::timestamptz[],
                                     %(skews)s::bigint[])
                    AS v(id, seen_at, skew_ms)
            ), written AS (
                UPDATE fleet_nodes n
                SET last_seen_at = GREATEST(n.last_seen_at, v.seen_at), clock_skew_ms = v.skew_ms
                FROM v
                WHERE n.id = v.id AND n.deleted_at IS NULL AND n.status = 'CONFIRMED'
                  AND (%(debounce)s::float8 <= 0
                       OR n.last_seen_at IS NULL
                       OR n.last_seen_at < v.seen_at - %(debounce)s::float8 * interval '1 second')
                RETURNING n.id
            )
            SELECT v.id, w.id IS NOT NULL, live.id IS NOT NULL, live.last_seen_at
            FROM v
            LEFT JOIN written w ON w.id = v.id
            LEFT JOIN fleet_nodes live
                ON live.id = v.id AND live.deleted_at IS NULL AND live.status = 'CONFIRMED'
            """,
            {
                "ids": [write.fleet_node_id for write in writes],
                "seen": [write.seen_at for write in writes],
                "skews": [write.skew_ms for write in writes],
                "debounce": debounce_seconds,
            },
        )
        return [
            LastSeenResult(int(node_id), bool(written), bool(live), utc_or_none(last_seen_at))
            for node_id, written, live, last_seen_at in rows
        ]
