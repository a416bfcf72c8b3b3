"""Who is calling: the node handshake (SPEC 3.4), session resolution with its cache
(SPEC 4.4) and admin tokens (SPEC 3.6).

Begin: a live api key of a live confirmed node whose key matches -> a fresh 32-byte
challenge (replacing the node's previous one), valid ``challenge_ttl_seconds``.
Complete: the challenge is consumed (delete-returning, so a replay finds nothing),
then the ed25519 signature over ``fleetwire.identity.auth_message(challenge)`` is
checked; a new session replaces the node's previous one, and the database NOTIFYs
every replica to drop the old one from its cache.
"""

from __future__ import annotations

import datetime
import logging

import nacl.exceptions
import nacl.signing

from fleetwire import messages as m
from fleetwire.identity import auth_message
from gateway import secrets as s
from gateway.clock import Clock
from gateway.config import Config
from gateway.errors import Unauthenticated
from gateway.metrics import Bound, Metrics
from gateway.principals import AdminPrincipal, NodePrincipal
from gateway.session_cache import SessionCache
from gateway.store.credentials import CredentialStore

logger = logging.getLogger(__name__)

INVALID_API_KEY = "invalid api key"
PUBKEY_MISMATCH = "identity_pubkey mismatch"
CHALLENGE_NOT_FOUND = "challenge expired or not found"
BAD_SIGNATURE = "signature verification failed"
INVALID_SESSION = "invalid or expired session"
INVALID_ADMIN_TOKEN = "invalid admin token"  # noqa: S105 (a message, not a secret)


class Auth:
    def __init__(
        self,
        store: CredentialStore,
        config: Config,
        metrics: Metrics,
        cache: SessionCache,
        clock: Clock,
    ) -> None:
        self._store = store
        self._config = config
        self._metrics = metrics
        self._cache = cache
        self._clock = clock
        self._hits = Bound(metrics.session_cache, result="hit")
        self._misses = Bound(metrics.session_cache, result="miss")

    def _refuse(self, reason: str, message: str) -> Unauthenticated:
        self._metrics.auth_failures.labels(reason=reason).inc()
        return Unauthenticated(message)

    async def begin(self, req: m.BeginAuthHandshakeRequest) -> m.BeginAuthHandshakeResponse:
        if not s.looks_like_api_key(req.api_key):
            raise self._refuse("invalid_api_key", INVALID_API_KEY)
        key_hash = s.digest(req.api_key)
        key = await self._store.find_api_key(key_hash)
        if key is None or not s.same(key.key_hash, key_hash):
            raise self._refuse("invalid_api_key", INVALID_API_KEY)
        if not s.same(key.identity_pubkey, req.identity_pubkey):
            raise self._refuse("pubkey_mismatch", PUBKEY_MISMATCH)
        challenge = s.new_challenge()
        now = self._clock()
        expires_at = now + datetime.timedelta(seconds=self._config.challenge_ttl_seconds)
        if not await self._store.put_challenge(
            key.fleet_node_id, key.org_id, s.digest(challenge), now, expires_at
        ):  # revoked between the lookup and the write
            raise self._refuse("invalid_api_key", INVALID_API_KEY)
        return m.BeginAuthHandshakeResponse(challenge=challenge, expires_at=expires_at)

    async def complete(
        self, req: m.CompleteAuthHandshakeRequest
    ) -> m.CompleteAuthHandshakeResponse:
        challenge = await self._store.take_challenge(s.digest(req.challenge))
        now = self._clock()
        if challenge is None or challenge.expires_at <= now:
            raise self._refuse("challenge_not_found", CHALLENGE_NOT_FOUND)
        try:
            nacl.signing.VerifyKey(challenge.identity_pubkey).verify(
                auth_message(req.challenge), req.signature
            )
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            raise self._refuse("bad_signature", BAD_SIGNATURE) from None
        node_id = challenge.fleet_node_id
        token = s.new_session_token()
        expires_at = now + datetime.timedelta(seconds=self._config.session_ttl_seconds)
        session_id = await self._store.put_session(
            node_id, challenge.org_id, s.digest(token), now, expires_at
        )
        if session_id is None:  # revoked while the challenge was out
            raise self._refuse("challenge_not_found", CHALLENGE_NOT_FOUND)
        # This replica drops the previous session at once; the others through NOTIFY.
        self._cache.drop_node(node_id, keep_session_id=session_id)
        logger.info("session started fleet_node_id=%s", node_id)
        return m.CompleteAuthHandshakeResponse(session_token=token, expires_at=expires_at)

    def cached_session(self, token: str) -> NodePrincipal | None:
        """The node holding this session if the cache may answer for it (no database
        work either way)."""
        if not self._cache.enabled or not s.looks_like_session_token(token):
            return None
        cached = self._cache.get(s.digest(token))
        if cached is not None:
            self._hits().inc()
        return cached

    async def resolve_session(self, token: str) -> NodePrincipal:
        """The node holding this session; a cache hit costs no database round trip."""
        if not s.looks_like_session_token(token):
            raise self._refuse("invalid_session", INVALID_SESSION)
        cached = self.cached_session(token)
        if cached is not None:
            return cached
        token_hash = s.digest(token)
        self._misses().inc()
        generation = self._cache.generation()
        session = await self._store.find_session(token_hash, self._clock())
        if session is None or not s.same(session.token_hash, token_hash):
            raise self._refuse("invalid_session", INVALID_SESSION)
        principal = NodePrincipal(
            fleet_node_id=session.fleet_node_id,
            org_id=session.org_id,
            session_id=session.session_id,
            session_expires_at=session.expires_at,
        )
        self._cache.put(token_hash, principal, generation)
        return principal

    async def resolve_admin_token(self, token: str) -> AdminPrincipal:
        """The operator holding this admin token (checked against the database every
        call: admin traffic is small and a revoked token must stop at once)."""
        if not s.looks_like_admin_token(token):
            raise self._refuse("invalid_admin_token", INVALID_ADMIN_TOKEN)
        token_hash = s.digest(token)
        record = await self._store.find_admin_token(token_hash)
        if record is None or not s.same(record.token_hash, token_hash):
            raise self._refuse("invalid_admin_token", INVALID_ADMIN_TOKEN)
        return AdminPrincipal(org_id=record.org_id, role=record.role, token_id=record.token_id)
