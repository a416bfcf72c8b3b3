"""The SQL text of every statement the gateway runs; only the data modules
(``gateway.db``, ``gateway.db_direct``) import it.

``%s`` / ``%(name)s`` parameters only; timestamps always come from the gateway's
clock as parameters. A node is *live* while ``deleted_at IS NULL``; only a live
``CONFIRMED`` node may authenticate.
"""

from __future__ import annotations

SCHEMA_LOCK_KEY = 0x666C656574  # "fleet": serialises concurrent init-db runs

NOTIFY = "SELECT pg_notify(%s, %s)"

# --- organizations and admin tokens ------------------------------------------------------
INSERT_ORG = (
    "INSERT INTO organizations (name) VALUES (%s) ON CONFLICT (name) DO NOTHING RETURNING id"
)
FIND_ORG = "SELECT id FROM organizations WHERE name = %s"
INSERT_ADMIN = """
INSERT INTO admin_tokens (org_id, token_hash, role, label)
SELECT id, %s, %s, %s FROM organizations WHERE name = %s
RETURNING id
"""
FIND_ADMIN = """
SELECT id, org_id, role, token_hash FROM admin_tokens
WHERE token_hash = %s AND revoked_at IS NULL
"""

# --- enrollment ---------------------------------------------------------------------------
INSERT_ENROLLMENT_CODE = """
INSERT INTO pending_enrollments (org_id, code_hash, created_by_token_id, created_at, expires_at)
VALUES (%s, %s, %s, %s, %s)
RETURNING id
"""
LOCK_OPEN_CODE = """
SELECT id, org_id FROM pending_enrollments
WHERE code_hash = %s AND status = 'OPEN' AND expires_at > %s
FOR UPDATE
"""
INSERT_NODE = """
INSERT INTO fleet_nodes (org_id, name, identity_pubkey, identity_fingerprint, status, created_at)
VALUES (%s, %s, %s, %s, 'AWAITING_CONFIRMATION', %s)
RETURNING id
"""
BIND_CODE = "UPDATE pending_enrollments SET status = 'BOUND', fleet_node_id = %s WHERE id = %s"

LOCK_NODE_FOR_CONFIRM = """
SELECT n.status, e.expires_at
FROM fleet_nodes n
LEFT JOIN pending_enrollments e ON e.fleet_node_id = n.id AND e.org_id = n.org_id
WHERE n.id = %s AND n.org_id = %s
FOR UPDATE OF n
"""
MARK_CONFIRMED = """
UPDATE fleet_nodes SET status = 'CONFIRMED', confirmed_at = %s
WHERE id = %s AND org_id = %s
"""
CONFIRM_ENROLLMENT = """
UPDATE pending_enrollments SET status = 'CONFIRMED' WHERE fleet_node_id = %s AND status = 'BOUND'
"""
INSERT_API_KEY = """
INSERT INTO api_keys (org_id, fleet_node_id, key_hash, created_at) VALUES (%s, %s, %s, %s)
"""

# --- revocation ---------------------------------------------------------------------------
MARK_REVOKED = """
UPDATE fleet_nodes SET status = 'REVOKED', deleted_at = %s
WHERE id = %s AND org_id = %s AND deleted_at IS NULL
RETURNING id
"""
CANCEL_ENROLLMENT = """
UPDATE pending_enrollments SET status = 'CANCELLED' WHERE fleet_node_id = %s AND status = 'BOUND'
"""
REVOKE_API_KEYS = """
UPDATE api_keys SET revoked_at = %s WHERE fleet_node_id = %s AND revoked_at IS NULL
"""
DELETE_SESSIONS = "DELETE FROM sessions WHERE fleet_node_id = %s"
DELETE_CHALLENGES = "DELETE FROM auth_challenges WHERE fleet_node_id = %s"

# --- listing: keyset pagination newest first; connectivity from the gateway's clock -------
LIST_NODES = """
SELECT id, name, status, identity_fingerprint, created_at, last_seen_at, clock_skew_ms
FROM fleet_nodes
WHERE org_id = %(org_id)s
  AND deleted_at IS NULL
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
  AND CASE %(connectivity)s::int
        WHEN 1 THEN last_seen_at >= %(online_since)s::timestamptz
        WHEN 2 THEN last_seen_at < %(online_since)s::timestamptz
        WHEN 3 THEN last_seen_at IS NULL
        ELSE true
      END
ORDER BY id DESC
LIMIT %(limit)s
"""

# --- handshake and sessions ------------------------------------------------------------------
_LIVE_CONFIRMED_NODE = """
SELECT 1 FROM fleet_nodes n
JOIN api_keys k ON k.fleet_node_id = n.id AND k.org_id = n.org_id AND k.revoked_at IS NULL
WHERE n.id = %s AND n.deleted_at IS NULL AND n.status = 'CONFIRMED'
"""
FIND_API_KEY = """
SELECT k.fleet_node_id, k.org_id, n.identity_pubkey, k.key_hash
FROM api_keys k
JOIN fleet_nodes n ON n.id = k.fleet_node_id AND n.org_id = k.org_id
WHERE k.key_hash = %s AND k.revoked_at IS NULL
  AND n.deleted_at IS NULL AND n.status = 'CONFIRMED'
"""
UPSERT_CHALLENGE = f"""
INSERT INTO auth_challenges (fleet_node_id, org_id, challenge_hash, created_at, expires_at)
SELECT %s::bigint, %s::bigint, %s::bytea, %s::timestamptz, %s::timestamptz
WHERE EXISTS ({_LIVE_CONFIRMED_NODE})
ON CONFLICT (fleet_node_id) DO UPDATE
    SET challenge_hash = EXCLUDED.challenge_hash,
        created_at = EXCLUDED.created_at,
        expires_at = EXCLUDED.expires_at
RETURNING fleet_node_id
"""
TAKE_CHALLENGE = """
DELETE FROM auth_challenges c
USING fleet_nodes n
WHERE c.challenge_hash = %s AND n.id = c.fleet_node_id AND n.org_id = c.org_id
RETURNING c.fleet_node_id, c.org_id, c.expires_at, n.identity_pubkey
"""
# A new session replaces the node's row (and gets a new id); the old token is gone.
UPSERT_SESSION = f"""
INSERT INTO sessions (fleet_node_id, org_id, token_hash, created_at, expires_at)
SELECT %s::bigint, %s::bigint, %s::bytea, %s::timestamptz, %s::timestamptz
WHERE EXISTS ({_LIVE_CONFIRMED_NODE})
ON CONFLICT (fleet_node_id) DO UPDATE
    SET id = EXCLUDED.id,
        token_hash = EXCLUDED.token_hash,
        created_at = EXCLUDED.created_at,
        expires_at = EXCLUDED.expires_at
RETURNING id
"""
FIND_SESSION = """
SELECT s.id, s.fleet_node_id, s.org_id, s.expires_at, s.token_hash
FROM sessions s
JOIN fleet_nodes n ON n.id = s.fleet_node_id AND n.org_id = s.org_id
WHERE s.token_hash = %s AND s.expires_at > %s
  AND n.deleted_at IS NULL AND n.status = 'CONFIRMED'
"""

# --- heartbeats: one statement per group-commit flush ----------------------------------------
# The debounce predicate is in the UPDATE itself, so replicas sharing the database write
# once per window. The last SELECT reads the pre-statement snapshot: `live` tells a node
# deleted meanwhile (not_found) from one another replica wrote recently (debounced).
WRITE_LAST_SEEN = """
WITH v AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(seen)s::timestamptz[], %(skews)s::bigint[])
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
"""

# --- sweeper: housekeeping only, every lookup checks expiry itself -----------------------------
SWEEP = """
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
"""
