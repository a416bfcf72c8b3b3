"""Who may call: admin tokens, api keys, handshake challenges and sessions (SPEC 3.4, 3.6).

A node is *live* while ``deleted_at IS NULL``; only a live ``CONFIRMED`` node with a live
api key may hold a challenge or a session. Every secret is looked up by its SHA-256.
"""

from __future__ import annotations

import datetime

from gateway.principals import Role
from gateway.store.notifications import Invalidation, InvalidationKind, notify
from gateway.store.pool import Database
from gateway.store.records import (
    AdminTokenRecord,
    ApiKeyRecord,
    ChallengeRecord,
    SessionRecord,
    utc,
)

# The guard of every write that hands a node a credential: it must (still) be live,
# confirmed and hold a live api key. One parameter: the node id.
_LIVE_CONFIRMED_NODE = """
SELECT 1 FROM fleet_nodes n
JOIN api_keys k ON k.fleet_node_id = n.id AND k.org_id = n.org_id AND k.revoked_at IS NULL
WHERE n.id = %s AND n.deleted_at IS NULL AND n.status = 'CONFIRMED'
"""


class CredentialStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find_admin_token(self, token_hash: bytes) -> AdminTokenRecord | None:
        row = await self._db.one(
            """
            SELECT id, org_id, role, token_hash FROM admin_tokens
            WHERE token_hash = %s AND revoked_at IS NULL
            """,
            (token_hash,),
        )
        if row is None:
            return None
        token_id, org_id, role, stored_hash = row
        return AdminTokenRecord(int(token_id), int(org_id), Role(role), bytes(stored_hash))

    async def find_api_key(self, key_hash: bytes) -> ApiKeyRecord | None:
        row = await self._db.one(
            """
            SELECT k.fleet_node_id, k.org_id, n.identity_pubkey, k.key_hash
            FROM api_keys k
            JOIN fleet_nodes n ON n.id = k.fleet_node_id AND n.org_id = k.org_id
            WHERE k.key_hash = %s AND k.revoked_at IS NULL
              AND n.deleted_at IS NULL AND n.status = 'CONFIRMED'
            """,
            (key_hash,),
        )
        if row is None:
            return None
        node_id, org_id, pubkey, stored_hash = row
        return ApiKeyRecord(int(node_id), int(org_id), bytes(pubkey), bytes(stored_hash))

    async def put_challenge(
        self,
        node_id: int,
        org_id: int,
        challenge_hash: bytes,
        now: datetime.datetime,
        expires_at: datetime.datetime,
    ) -> bool:
        """Replace the node's live challenge; False when the node stopped being live."""
        row = await self._db.one(
            f"""
            INSERT INTO auth_challenges
                (fleet_node_id, org_id, challenge_hash, created_at, expires_at)
            SELECT %s::bigint, %s::bigint, %s::bytea, %s::timestamptz, %s::timestamptz
            WHERE EXISTS ({_LIVE_CONFIRMED_NODE})
            ON CONFLICT (fleet_node_id) DO UPDATE
                SET challenge_hash = EXCLUDED.challenge_hash,
                    created_at = EXCLUDED.created_at,
                    expires_at = EXCLUDED.expires_at
            RETURNING fleet_node_id
            """,
            (node_id, org_id, challenge_hash, now, expires_at, node_id),
        )
        return row is not None

    async def take_challenge(self, challenge_hash: bytes) -> ChallengeRecord | None:
        """Consume a challenge (delete-returning: a replay finds nothing)."""
        async with self._db.cursor() as cur, cur.begin():
            await cur.execute(
                """
                DELETE FROM auth_challenges c
                USING fleet_nodes n
                WHERE c.challenge_hash = %s AND n.id = c.fleet_node_id AND n.org_id = c.org_id
                RETURNING c.fleet_node_id, c.org_id, c.expires_at, n.identity_pubkey
                """,
                (challenge_hash,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        node_id, org_id, expires_at, pubkey = row
        return ChallengeRecord(int(node_id), int(org_id), utc(expires_at), bytes(pubkey))

    async def put_session(
        self,
        node_id: int,
        org_id: int,
        token_hash: bytes,
        now: datetime.datetime,
        expires_at: datetime.datetime,
    ) -> int | None:
        """Replace the node's session (NOTIFY so replicas drop the old one); the new
        session id, or None when the node or its api key is no longer live."""
        async with self._db.cursor() as cur, cur.begin():
            # A new session replaces the node's row and gets a new id: the old token is gone.
            await cur.execute(
                f"""
                INSERT INTO sessions (fleet_node_id, org_id, token_hash, created_at, expires_at)
                SELECT %s::bigint, %s::bigint, %s::bytea, %s::timestamptz, %s::timestamptz
                WHERE EXISTS ({_LIVE_CONFIRMED_NODE})
                ON CONFLICT (fleet_node_id) DO UPDATE
                    SET id = EXCLUDED.id,
                        token_hash = EXCLUDED.token_hash,
                        created_at = EXCLUDED.created_at,
                        expires_at = EXCLUDED.expires_at
                RETURNING id
                """,
                (node_id, org_id, token_hash, now, expires_at, node_id),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            session_id = int(row[0])
            await notify(cur, Invalidation(InvalidationKind.SESSION, node_id, session_id))
            return session_id

    async def find_session(self, token_hash: bytes, now: datetime.datetime) -> SessionRecord | None:
        row = await self._db.one(
            """
            SELECT s.id, s.fleet_node_id, s.org_id, s.expires_at, s.token_hash
            FROM sessions s
            JOIN fleet_nodes n ON n.id = s.fleet_node_id AND n.org_id = s.org_id
            WHERE s.token_hash = %s AND s.expires_at > %s
              AND n.deleted_at IS NULL AND n.status = 'CONFIRMED'
            """,
            (token_hash, now),
        )
        if row is None:
            return None
        session_id, node_id, org_id, expires_at, stored_hash = row
        return SessionRecord(
            int(session_id), int(node_id), int(org_id), utc(expires_at), bytes(stored_hash)
        )
