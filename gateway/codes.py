"""Enrollment codes as operators manage them (SPEC 2.2, 3.8, 3.9): create, list, revoke.

Scoped to the admin token's organization: another organization's code id behaves exactly
like one that does not exist. The role each call needs (viewers may list) is declared in
``gateway.rpcs``.
"""

from __future__ import annotations

import datetime
import logging

from fleetwire import messages as m
from gateway import secrets as s
from gateway.clock import Clock
from gateway.errors import NotFound
from gateway.paging import decode_page_token, encode_page_token
from gateway.principals import AdminPrincipal
from gateway.store.codes import CodeStore, NewCodeRow
from gateway.store.records import CodeRecord, CodeState

logger = logging.getLogger(__name__)

CODE_NOT_FOUND = "enrollment code not found"
_STATE = {
    CodeState.OPEN: m.EnrollmentCodeState.ENROLLMENT_CODE_STATE_OPEN,
    CodeState.USED_UP: m.EnrollmentCodeState.ENROLLMENT_CODE_STATE_USED_UP,
    CodeState.EXPIRED: m.EnrollmentCodeState.ENROLLMENT_CODE_STATE_EXPIRED,
    CodeState.REVOKED: m.EnrollmentCodeState.ENROLLMENT_CODE_STATE_REVOKED,
}


def code_summary(record: CodeRecord) -> m.EnrollmentCodeSummary:
    return m.EnrollmentCodeSummary(
        pending_enrollment_id=m.Int64(record.pending_enrollment_id),
        created_at=record.created_at,
        expires_at=record.expires_at,
        pre_approved=record.pre_approved,
        max_uses=m.Int32(record.max_uses),
        uses=m.Int32(record.uses),
        state=_STATE[record.state],
    )


class EnrollmentCodes:
    def __init__(self, store: CodeStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create_code(
        self, p: AdminPrincipal, req: m.CreateEnrollmentCodeRequest
    ) -> m.CreateEnrollmentCodeResponse:
        """A new code, shown once; the message validated its TTL and uses (SPEC 2.2)."""
        ttl = req.ttl_seconds if req.ttl_seconds is not None else m.DEFAULT_CODE_TTL_SECONDS
        code = s.new_enrollment_code()
        now = self._clock()
        row = NewCodeRow(
            org_id=p.org_id,
            token_id=p.token_id,
            code_hash=s.digest(code),
            created_at=now,
            expires_at=now + datetime.timedelta(seconds=ttl),
            pre_approved=req.pre_approved,
            max_uses=req.uses_allowed,
        )
        enrollment_id = await self._store.insert_code(row)
        logger.info(
            "enrollment code created pending_enrollment_id=%s pre_approved=%s max_uses=%s",
            enrollment_id,
            row.pre_approved,
            row.max_uses,
        )
        return m.CreateEnrollmentCodeResponse(
            code=code,
            expires_at=row.expires_at,
            pending_enrollment_id=m.Int64(enrollment_id),
            pre_approved=row.pre_approved,
            max_uses=m.Int32(row.max_uses),
        )

    async def list_codes(
        self, p: AdminPrincipal, req: m.ListEnrollmentCodesRequest
    ) -> m.ListEnrollmentCodesResponse:
        page_size = req.page_size or m.DEFAULT_PAGE_SIZE
        before_id = decode_page_token(req.page_token)
        records = await self._store.list_codes(
            p.org_id, before_id, page_size + 1, req.include_closed, self._clock()
        )
        page, more = records[:page_size], len(records) > page_size
        next_token = encode_page_token(page[-1].pending_enrollment_id) if more and page else ""
        return m.ListEnrollmentCodesResponse(
            enrollment_codes=tuple(code_summary(record) for record in page),
            next_page_token=next_token,
        )

    async def revoke_code(self, p: AdminPrincipal, req: m.RevokeEnrollmentCodeRequest) -> m.Empty:
        """The code stops working at once, retries included; nodes it registered that
        still await confirmation go with it; confirmed nodes are unaffected."""
        if not await self._store.revoke_code(p.org_id, req.pending_enrollment_id, self._clock()):
            raise NotFound(CODE_NOT_FOUND)
        logger.info("enrollment code revoked pending_enrollment_id=%s", req.pending_enrollment_id)
        return m.Empty()
