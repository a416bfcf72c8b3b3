"""Helpers of the enrollment-code tests (SPEC 3.8, 3.9): pre-approved codes, signed
Registers, and a code's row as the database holds it."""

from __future__ import annotations

import nacl.signing

from fleetwire import messages as m
from fleetwire.identity import register_message
from gateway.services import Services
from tests.support.gateway_services import Org
from tests.support.postgres import query


def registration_signature(key: nacl.signing.SigningKey, code: str) -> bytes:
    return key.sign(register_message(code)).signature


async def new_pre_approved_code(
    services: Services, org: Org, uses: int = 1, ttl_seconds: int | None = None
) -> m.CreateEnrollmentCodeResponse:
    return await services.codes.create_code(
        org.admin,
        m.CreateEnrollmentCodeRequest(
            ttl_seconds=None if ttl_seconds is None else m.Int32(ttl_seconds),
            pre_approved=True,
            max_uses=m.Int32(uses),
        ),
    )


async def register_signed(
    services: Services,
    code: str,
    name: str,
    key: nacl.signing.SigningKey,
    signature: bytes | None = None,
) -> m.RegisterResponse:
    """Register as the agent does: signed by the identity key (or with ``signature``)."""
    return await services.enrollment.register(
        m.RegisterRequest(
            enrollment_token=code,
            name=name,
            identity_pubkey=bytes(key.verify_key),
            registration_signature=(
                registration_signature(key, code) if signature is None else signature
            ),
        )
    )


def uses_of(database_url: str, pending_enrollment_id: int) -> int:
    rows = query(
        database_url,
        "SELECT uses FROM pending_enrollments WHERE id = %s",
        (pending_enrollment_id,),
    )
    return int(rows[0][0])


def live_nodes(database_url: str) -> int:
    rows = query(database_url, "SELECT count(*) FROM fleet_nodes WHERE deleted_at IS NULL")
    return int(rows[0][0])
