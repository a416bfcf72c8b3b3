-- Connectivity events, goodbye and node facts (SPEC 4.9-4.11).
--
-- fleet_nodes.liveness is the connectivity the events have recorded: it changes exactly when
-- an ONLINE, OFFLINE or STOPPED event is written, in the same statement, so each transition
-- is recorded once whichever replica sees it and whatever dies half-way. The listing still
-- computes ONLINE/OFFLINE with the gateway's clock (SPEC 4.5); only STOPPED comes from here.
--   NEVER_SEEN -> ONLINE (a heartbeat) -> OFFLINE (the scanner) -> ONLINE ...
--   any -> STOPPED (a goodbye heartbeat) -> ONLINE (the next heartbeat)
-- liveness_since is the gateway time of the last transition (for OFFLINE: the moment
-- last_seen_at became older than --offline-after).
-- Heartbeats leave both columns unchanged unless the liveness changes, and no index covers
-- last_seen_at, so a heartbeat's write stays a HOT update whenever the page has room.
ALTER TABLE fleet_nodes
    ADD COLUMN liveness text NOT NULL DEFAULT 'NEVER_SEEN'
        CONSTRAINT fleet_nodes_liveness_check
        CHECK (liveness IN ('NEVER_SEEN', 'ONLINE', 'OFFLINE', 'STOPPED')),
    ADD COLUMN liveness_since timestamptz,
    -- Node facts (SPEC 4.11): NULL until the node sent them, then all five.
    ADD COLUMN agent_version text,
    ADD COLUMN hostname text,
    ADD COLUMN os text,
    ADD COLUMN boot_id text,
    ADD COLUMN python_version text,
    ADD CONSTRAINT fleet_nodes_facts_check CHECK (
        num_nulls(agent_version, hostname, os, boot_id, python_version) IN (0, 5)
        AND greatest(length(agent_version), length(hostname), length(os), length(boot_id),
                     length(python_version)) <= 255
    );

-- Nodes a release without events saw are ONLINE as far as events know: the offline scan
-- then records OFFLINE once for those that are not, at the moment they went.
UPDATE fleet_nodes SET liveness = 'ONLINE', liveness_since = last_seen_at
WHERE last_seen_at IS NOT NULL;

-- fleet_nodes{org,connectivity}: one index-only pass over confirmed live nodes per refresh.
CREATE INDEX fleet_nodes_confirmed_liveness
    ON fleet_nodes (org_id, liveness) WHERE deleted_at IS NULL AND status = 'CONFIRMED';
-- GetFleetSummary's recentlyOffline: the few nodes offline now, newest transition first.
CREATE INDEX fleet_nodes_offline_since
    ON fleet_nodes (org_id, liveness_since DESC) WHERE liveness = 'OFFLINE' AND deleted_at IS NULL;

CREATE TABLE fleet_node_events (
    id             bigint PRIMARY KEY,  -- from reserve_fleet_node_event_ids, below
    org_id         bigint NOT NULL,
    fleet_node_id  bigint NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('REGISTERED', 'CONFIRMED', 'REVOKED', 'ONLINE',
                                                 'OFFLINE', 'STOPPED', 'REBOOTED')),
    occurred_at    timestamptz NOT NULL,  -- gateway time
    FOREIGN KEY (fleet_node_id, org_id) REFERENCES fleet_nodes (id, org_id)
);

-- ListFleetNodeEvents pages by id, per organization or per node; retention by age.
CREATE INDEX fleet_node_events_org ON fleet_node_events (org_id, id);
CREATE INDEX fleet_node_events_node ON fleet_node_events (fleet_node_id, id);
CREATE INDEX fleet_node_events_age ON fleet_node_events (occurred_at);

-- Event ids are not an identity: a sequence hands out ids in the order transactions ask,
-- not in the order they commit, so a reader paging on "after id N" (fleetctl events
-- --follow) could pass an id whose transaction commits a moment later and never see it.
-- Instead each transaction that records events reserves its ids here: the row stays locked
-- until it commits, so ids become visible in increasing order. Writers reserve last in
-- their transaction (after locking the node rows), so this lock joins no deadlock cycle.
CREATE TABLE fleet_node_event_ids (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_id   bigint NOT NULL
);
INSERT INTO fleet_node_event_ids (last_id) VALUES (0);

-- Reserve `wanted` ids; returns the id before the first (ids are that + 1 .. + wanted).
CREATE FUNCTION reserve_fleet_node_event_ids(wanted bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    UPDATE fleet_node_event_ids SET last_id = last_id + wanted RETURNING last_id - wanted
$$;
