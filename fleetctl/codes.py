"""Enrollment codes: ``create-code``, ``codes`` and ``revoke-code`` (SPEC 3.8, 3.9, 7)."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Iterable

import attrs

from fleetctl.context import Context
from fleetctl.errors import UsageError
from fleetctl.output import api_json
from fleetctl.table import ABSENT, ago, label, relative, render
from fleetwire import messages as m
from fleetwire import procedures as p
from fleetwire import scalars
from fleetwire.durations import format_duration

HEADERS = ("ID", "CREATED", "EXPIRES", "PRE-APPROVED", "USES", "STATE")


def _ttl_bounds(pre_approved: bool) -> str:
    low = format_duration(m.MIN_CODE_TTL_SECONDS)
    if pre_approved:
        return f"between {low} and {format_duration(m.MAX_PRE_APPROVED_CODE_TTL_SECONDS)}"
    return (
        f"between {low} and {format_duration(m.MAX_CODE_TTL_SECONDS)} "
        f"(up to {format_duration(m.MAX_PRE_APPROVED_CODE_TTL_SECONDS)} with --pre-approve)"
    )


@attrs.frozen
class CreateCode:
    request: m.CreateEnrollmentCodeRequest

    @classmethod
    def from_flags(cls, ttl_seconds: float, pre_approve: bool, uses: int | None) -> CreateCode:
        """The command, or :class:`UsageError` for flags the gateway would refuse (its
        bounds, checked here so the operator reads them in flag terms)."""
        if uses is not None and not pre_approve:
            raise UsageError("--uses needs --pre-approve (a confirmation code registers one node)")
        longest = m.MAX_PRE_APPROVED_CODE_TTL_SECONDS if pre_approve else m.MAX_CODE_TTL_SECONDS
        if not m.MIN_CODE_TTL_SECONDS <= ttl_seconds <= longest:
            raise UsageError(f"--ttl must be {_ttl_bounds(pre_approve)}")
        return cls(
            m.CreateEnrollmentCodeRequest(
                ttl_seconds=m.Int32(int(ttl_seconds)),
                pre_approved=pre_approve,
                max_uses=None if uses is None else m.Int32(uses),
            )
        )

    def run(self, ctx: Context) -> None:
        response = ctx.client.call(p.CREATE_ENROLLMENT_CODE, self.request)
        uses = response.max_uses or self.request.uses_allowed
        if response.pre_approved:
            kind = f"pre-approved code (confirms the nodes it registers; {uses} uses allowed)"
        else:
            kind = "confirmation code (1 use; confirm the node with `fleetctl confirm`)"
        expires = response.expires_at
        until = (
            f"{scalars.format_timestamp(expires)} ({relative(expires, ctx.clock.now())})"
            if expires
            else "?"
        )
        print(
            f"{kind} for pending enrollment {response.pending_enrollment_id}, "
            f"expires {until}; shown once:",
            file=sys.stderr,
        )
        print(response.code)


def code_table(codes: Iterable[m.EnrollmentCodeSummary], now: datetime.datetime) -> str:
    rows = [
        (
            str(code.pending_enrollment_id),
            ago(code.created_at, now) if code.created_at else ABSENT,
            relative(code.expires_at, now),
            "yes" if code.pre_approved else "no",
            f"{code.uses}/{code.max_uses}",
            label(code.state),
        )
        for code in codes
    ]
    return render(HEADERS, rows)


@attrs.frozen
class Codes:
    include_closed: bool = False
    json: bool = False

    def run(self, ctx: Context) -> None:
        first = m.ListEnrollmentCodesRequest(
            page_size=m.Int32(m.MAX_PAGE_SIZE), include_closed=self.include_closed
        )
        found = ctx.client.collect(
            p.LIST_ENROLLMENT_CODES, first, lambda page: page.enrollment_codes
        )
        if self.json:
            print(api_json(m.ListEnrollmentCodesResponse(enrollment_codes=found)))
        else:
            print(code_table(found, ctx.clock.now()))


@attrs.frozen
class RevokeCode:
    pending_enrollment_id: int

    def run(self, ctx: Context) -> None:
        request = m.RevokeEnrollmentCodeRequest(
            pending_enrollment_id=m.Int64(self.pending_enrollment_id)
        )
        ctx.client.call(p.REVOKE_ENROLLMENT_CODE, request)
        print(f"revoked enrollment code pending_enrollment_id={self.pending_enrollment_id}")
