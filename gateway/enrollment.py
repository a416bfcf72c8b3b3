"""Register (SPEC 3.1, 3.2, 3.8).

A code is 32 random bytes (base64url, 43 chars), stored as its SHA-256, org-scoped, with a
TTL; a confirmation code registers one node, which then awaits an operator; a pre-approved
code registers up to ``maxUses`` nodes and confirms each (Register answers with its api
key). Register creates the node and binds the code in one transaction, so concurrent
Registers with one code never exceed its uses, and a Register that fails consumes none.

``registrationSignature`` (the identity key's signature over
``fleetwire.identity.register_message(code)``) is verified whenever present, before any
database work, and required for a pre-approved code. It makes Register retry-safe: the
same code and key again, within 24 h, answer with the node they registered (a pre-approved
one with a freshly minted api key: the previous key is revoked and its session ended on
every replica) and consume no further use.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable

import nacl.exceptions
import nacl.signing

from fleetwire import messages as m
from fleetwire.identity import fingerprint, register_message
from gateway import secrets as s
from gateway.clock import Clock
from gateway.errors import FailedPrecondition, InvalidArgument, NameOrKeyInUse, Unauthenticated
from gateway.metrics import Metrics
from gateway.store.records import RegisterOutcome
from gateway.store.registration import RegisterAttempt, RegistrationStore

logger = logging.getLogger(__name__)

INVALID_CODE = "invalid enrollment code"
INVALID_SIGNATURE = "invalid registration signature"
BAD_NAME = "name: must be printable text (no control characters)"
IN_USE = "fleet node identity or name already in use"


def printable_name(name: str) -> bool:
    """No control characters (they break the operator's table, and PostgreSQL text
    cannot hold NUL) and no lone surrogates (not encodable as UTF-8)."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in name)


def signed_by_key(req: m.RegisterRequest) -> bool:
    """Whether the request's signature is the identity key's over its code."""
    try:
        nacl.signing.VerifyKey(req.identity_pubkey).verify(
            register_message(req.enrollment_token), req.registration_signature
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


class Enrollment:
    def __init__(
        self,
        store: RegistrationStore,
        metrics: Metrics,
        clock: Clock,
        on_rekeyed: Callable[[int], None],
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._on_rekeyed = on_rekeyed  # this replica drops the node's sessions at once

    async def register(self, req: m.RegisterRequest) -> m.RegisterResponse:
        if not printable_name(req.name):
            raise InvalidArgument(BAD_NAME)
        if not s.looks_like_enrollment_code(req.enrollment_token):
            raise self._refuse("invalid_enrollment_code", INVALID_CODE)
        signed = bool(req.registration_signature)
        if signed and not signed_by_key(req):
            raise self._refuse("invalid_registration_signature", INVALID_SIGNATURE)
        key_fingerprint = fingerprint(req.identity_pubkey)
        api_key = s.new_api_key()  # handed out only if the code turns out pre-approved
        attempt = RegisterAttempt(
            code_hash=s.digest(req.enrollment_token),
            now=self._clock(),
            name=req.name,
            identity_pubkey=req.identity_pubkey,
            fingerprint=key_fingerprint,
            signed=signed,
            api_key_hash=s.digest(api_key),
        )
        try:
            registration = await self._store.register(attempt)
        except NameOrKeyInUse:
            raise FailedPrecondition(IN_USE) from None
        outcome, node_id = registration.outcome, registration.fleet_node_id
        if outcome is RegisterOutcome.INVALID_CODE:
            raise self._refuse("invalid_enrollment_code", INVALID_CODE)
        if outcome is RegisterOutcome.SIGNATURE_REQUIRED:
            raise self._refuse("invalid_registration_signature", INVALID_SIGNATURE)
        if outcome is RegisterOutcome.RETRIED:
            if registration.pre_approved:
                self._on_rekeyed(node_id)
            logger.info(
                "Register repeated: same fleet node fleet_node_id=%s pre_approved=%s",
                node_id,
                registration.pre_approved,
            )
        else:
            logger.info(
                "fleet node registered fleet_node_id=%s pre_approved=%s",
                node_id,
                registration.pre_approved,
            )
        if not registration.pre_approved:
            return m.RegisterResponse(
                fleet_node_id=m.Int64(node_id),
                enrollment_status=m.EnrollmentStatus.ENROLLMENT_STATUS_PENDING,
                identity_fingerprint=key_fingerprint,
            )
        return m.RegisterResponse(
            fleet_node_id=m.Int64(node_id),
            enrollment_status=m.EnrollmentStatus.ENROLLMENT_STATUS_CONFIRMED,
            identity_fingerprint=key_fingerprint,
            api_key=api_key,
        )

    def _refuse(self, reason: str, message: str) -> Unauthenticated:
        self._metrics.auth_failures.labels(reason=reason).inc()
        return Unauthenticated(message)
