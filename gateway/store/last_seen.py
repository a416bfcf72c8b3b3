"""The last_seen write of a group-commit flush: one statement for the whole batch (SPEC 4.1-4.3),
which also records the connectivity events a heartbeat brings (SPEC 4.9-4.11)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from gateway.store.pool import Database
from gateway.store.records import LastSeenResult, LastSeenWrite, utc_or_none


class LastSeenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(
        self,
        writes: Sequence[LastSeenWrite],
        debounce_seconds: float,
        offline_after_seconds: float,
    ) -> list[LastSeenResult]:
        """Advance ``last_seen_at`` (and the clock skew) of every node in ``writes`` that
        is live, confirmed and not written within ``debounce_seconds`` (0: always), or
        that says goodbye, or is not ONLINE as far as events know, or sends facts that
        differ from the stored ones; store those facts.

        The debounce predicate is in the statement itself, so replicas sharing the database
        write once per window. ``old`` locks the rows to write and reads them at their
        newest version (another replica or the offline scan may have changed them since
        this statement's snapshot): what a node was decides the events its write records,
        in the same statement, so each is recorded once. Events: OFFLINE when the node was
        ONLINE but silent past ``offline_after_seconds`` and the scan has not said so yet
        (at the moment it went), ONLINE when it was not ONLINE, REBOOTED when its boot id
        changed (both known and not empty), STOPPED for a goodbye. Event ids: see
        ``gateway.store.events``. The last SELECT reads the pre-statement snapshot:
        ``live`` tells a node deleted meanwhile (not_found) from one written recently.
        """
        facts = [write.facts for write in writes]
        rows = await self._db.all(
            """
            WITH v AS (
                SELECT * FROM unnest(%(ids)s::bigint[], %(seen)s::timestamptz[],
                                     %(skews)s::bigint[], %(stopping)s::boolean[],
                                     %(agent)s::text[], %(host)s::text[], %(os)s::text[],
                                     %(boot)s::text[], %(python)s::text[])
                    AS v(id, seen_at, skew_ms, stopping, agent_version, hostname, os, boot_id,
                         python_version)
            ), old AS (
                SELECT n.id, n.org_id, v.seen_at, v.skew_ms, v.stopping,
                       v.agent_version, v.hostname, v.os, v.boot_id, v.python_version,
                       n.liveness = 'ONLINE' AND n.last_seen_at < v.seen_at - %(offline)s
                           AS missed_offline,
                       n.last_seen_at + %(offline)s AS offline_at,
                       n.liveness <> 'ONLINE' OR n.last_seen_at < v.seen_at - %(offline)s
                           AS came_online,
                       coalesce(n.boot_id <> '' AND v.boot_id <> '' AND n.boot_id <> v.boot_id,
                                false) AS rebooted
                FROM fleet_nodes n JOIN v ON v.id = n.id
                WHERE n.deleted_at IS NULL AND n.status = 'CONFIRMED'
                  AND (%(debounce)s::float8 <= 0
                       OR n.last_seen_at IS NULL
                       OR n.last_seen_at < v.seen_at - %(debounce)s::float8 * interval '1 second'
                       OR v.stopping
                       OR n.liveness <> 'ONLINE'
                       OR (v.agent_version IS NOT NULL
                           AND (n.agent_version, n.hostname, n.os, n.boot_id, n.python_version)
                               IS DISTINCT FROM
                               (v.agent_version, v.hostname, v.os, v.boot_id, v.python_version)))
                ORDER BY n.id
                FOR UPDATE OF n
            ), written AS (
                UPDATE fleet_nodes n
                SET last_seen_at = GREATEST(n.last_seen_at, old.seen_at),
                    clock_skew_ms = old.skew_ms,
                    liveness = CASE WHEN old.stopping THEN 'STOPPED' ELSE 'ONLINE' END,
                    liveness_since = CASE WHEN old.stopping OR old.came_online THEN old.seen_at
                                          ELSE n.liveness_since END,
                    agent_version = coalesce(old.agent_version, n.agent_version),
                    hostname = coalesce(old.hostname, n.hostname),
                    os = coalesce(old.os, n.os),
                    boot_id = coalesce(old.boot_id, n.boot_id),
                    python_version = coalesce(old.python_version, n.python_version)
                FROM old
                WHERE n.id = old.id
                RETURNING n.id
            ), new_events AS (
                SELECT old.org_id, old.id, e.kind, e.occurred_at,
                       row_number() OVER (ORDER BY old.id, e.step) AS n
                FROM old CROSS JOIN LATERAL (VALUES
                    (1, 'OFFLINE', old.offline_at, old.missed_offline),
                    (2, 'ONLINE', old.seen_at, old.came_online),
                    (3, 'REBOOTED', old.seen_at, old.rebooted),
                    (4, 'STOPPED', old.seen_at, old.stopping)
                ) AS e(step, kind, occurred_at, happened)
                WHERE e.happened
            ), event_ids AS (
                SELECT reserve_fleet_node_event_ids(count(*)) AS before_first
                FROM new_events HAVING count(*) > 0
            ), recorded AS (
                INSERT INTO fleet_node_events (id, org_id, fleet_node_id, kind, occurred_at)
                SELECT event_ids.before_first + e.n, e.org_id, e.id, e.kind, e.occurred_at
                FROM new_events e CROSS JOIN event_ids
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
                "stopping": [write.stopping for write in writes],
                "agent": [None if f is None else f.agent_version for f in facts],
                "host": [None if f is None else f.hostname for f in facts],
                "os": [None if f is None else f.os for f in facts],
                "boot": [None if f is None else f.boot_id for f in facts],
                "python": [None if f is None else f.python_version for f in facts],
                "debounce": debounce_seconds,
                "offline": datetime.timedelta(seconds=offline_after_seconds),
            },
        )
        return [
            LastSeenResult(int(node_id), bool(written), bool(live), utc_or_none(last_seen_at))
            for node_id, written, live, last_seen_at in rows
        ]
