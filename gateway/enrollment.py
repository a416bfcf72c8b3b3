"""Enrollment codes and Register (SPEC 3.1, 3.2).

A code is 32 random bytes (base64url, 43 chars), stored as its SHA-256, org-scoped,
single use, with a TTL. Register creates the node and binds the code in one
transaction, so concurrent Registers with one code produce exactly one node, and a
Register that fails leaves the code usable.
"""

from __future__ import annotations

import datetime
import logging
import unicodedata

import attrs

from fleetwire import messages as m
from fleetwire.identity import fingerprint
from gateway import secrets as s
from gateway.clock import Clock
from gateway.errors import FailedPrecondition, InvalidArgument, NameOrKeyInUse, Unauthenticated
from gateway.metrics import Metrics
from gateway.store.enrollment import EnrollmentStore

logger = logging.getLogger(__name__)

INVALID_CODE = "invalid enrollment code"
BAD_NAME = "name: must be printable text (no control characters)"
IN_USE = "fleet node identity or name already in use"


@attrs.frozen
class NewCode:
    code: str = attrs.field(repr=False)
    pending_enrollment_id: int
    expires_at: datetime.datetime


def printable_name(name: str) -> bool:
    """No control characters (they break the operator's table, and PostgreSQL text
    cannot hold NUL) and no lone surrogates (not encodable as UTF-8)."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in name)


class Enrollment:
    def __init__(self, store: EnrollmentStore, metrics: Metrics, clock: Clock) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock

    async def create_code(self, org_id: int, token_id: int, ttl_seconds: float) -> NewCode:
        code = s.new_enrollment_code()
        now = self._clock()
        expires_at = now + datetime.timedelta(seconds=ttl_seconds)
        enrollment_id = await self._store.insert_code(
            org_id, token_id, s.digest(code), now, expires_at
        )
        logger.info("enrollment code created pending_enrollment_id=%s", enrollment_id)
        return NewCode(code=code, pending_enrollment_id=enrollment_id, expires_at=expires_at)

    async def register(self, req: m.RegisterRequest) -> m.RegisterResponse:
        if not printable_name(req.name):
            raise InvalidArgument(BAD_NAME)
        if not s.looks_like_enrollment_code(req.enrollment_token):
            raise self._invalid_code()
        key_fingerprint = fingerprint(req.identity_pubkey)
        try:
            node_id = await self._store.register_node(
                s.digest(req.enrollment_token),
                self._clock(),
                req.name,
                req.identity_pubkey,
                key_fingerprint,
            )
        except NameOrKeyInUse:
            raise FailedPrecondition(IN_USE) from None
        if node_id is None:
            raise self._invalid_code()
        logger.info("fleet node registered fleet_node_id=%s", node_id)
        return m.RegisterResponse(
            fleet_node_id=m.Int64(node_id),
            enrollment_status=m.EnrollmentStatus.ENROLLMENT_STATUS_PENDING,
            identity_fingerprint=key_fingerprint,
        )

    def _invalid_code(self) -> Unauthenticated:
        self._metrics.auth_failures.labels(reason="invalid_enrollment_code").inc()
        return Unauthenticated(INVALID_CODE)
