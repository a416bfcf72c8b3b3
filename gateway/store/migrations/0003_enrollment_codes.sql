-- Pre-approved, multi-use, revocable enrollment codes and the node <-> code binding that
-- makes a repeated Register retry-safe (SPEC 3.8, 3.9).
--
-- A code is still a row of pending_enrollments. A confirmation code keeps its status
-- machine (OPEN -> BOUND -> CONFIRMED | CANCELLED | EXPIRED) and uses at most 1; a
-- pre-approved code stays OPEN (or EXPIRED, by the sweeper) and counts its uses up to
-- max_uses. Revocation is revoked_at, for both kinds (status cannot say it: an OPEN
-- confirmation code has no node to be CANCELLED with).

ALTER TABLE pending_enrollments
    ADD COLUMN pre_approved boolean NOT NULL DEFAULT false,
    ADD COLUMN max_uses integer NOT NULL DEFAULT 1,
    -- nodes registered with the code; never decreases (revoking a node gives no use back)
    ADD COLUMN uses integer NOT NULL DEFAULT 0,
    ADD COLUMN revoked_at timestamptz;

-- A code of the first release that was bound has used its one use.
UPDATE pending_enrollments SET uses = 1 WHERE fleet_node_id IS NOT NULL;

ALTER TABLE pending_enrollments
    ADD CONSTRAINT pending_enrollments_max_uses CHECK (max_uses BETWEEN 1 AND 100000),
    ADD CONSTRAINT pending_enrollments_uses CHECK (uses BETWEEN 0 AND max_uses),
    ADD CONSTRAINT pending_enrollments_multi_use_pre_approved CHECK (pre_approved OR max_uses = 1);

-- ListEnrollmentCodes: keyset pagination per organization, newest first.
CREATE INDEX pending_enrollments_listing ON pending_enrollments (org_id, id DESC);

-- Which code registered which node, and when: a Register repeated with the same code by
-- the holder of the same (live) key within 24 h of this row is a retry, not a new node.
-- Written for both kinds of code.
CREATE TABLE enrollment_code_nodes (
    fleet_node_id          bigint PRIMARY KEY,
    org_id                 bigint NOT NULL,
    pending_enrollment_id  bigint NOT NULL REFERENCES pending_enrollments (id),
    registered_at          timestamptz NOT NULL,
    FOREIGN KEY (fleet_node_id, org_id) REFERENCES fleet_nodes (id, org_id)
);

CREATE INDEX enrollment_code_nodes_code ON enrollment_code_nodes (pending_enrollment_id);

-- The nodes codes of the first release registered.
INSERT INTO enrollment_code_nodes (fleet_node_id, org_id, pending_enrollment_id, registered_at)
SELECT e.fleet_node_id, e.org_id, e.id, n.created_at
FROM pending_enrollments e
JOIN fleet_nodes n ON n.id = e.fleet_node_id AND n.org_id = e.org_id;
