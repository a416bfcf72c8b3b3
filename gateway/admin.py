"""The operator-facing services (SPEC 2.2, 3.3, 3.5, 3.6): admin tokens, codes,
listing, confirm and revoke. Everything is scoped to the token's organization: another
organization's node id behaves exactly like one that does not exist.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
import re
from collections.abc import Callable

from fleetwire import messages as m
from fleetwire.validators import INT64_MAX
from gateway import secrets as s
from gateway.clock import Clock
from gateway.config import Config
from gateway.db import ConfirmOutcome, Database
from gateway.enrollment import Enrollment
from gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from gateway.metrics import Metrics
from gateway.principals import AdminPrincipal, Role

logger = logging.getLogger(__name__)

INVALID_TOKEN = "invalid admin token"  # noqa: S105 (a message, not a secret)
NEEDS_ADMIN = "this call needs an admin token (the token's role is viewer)"
NODE_NOT_FOUND = "fleet node not found"
BAD_PAGE_TOKEN = "pageToken: malformed page token"  # noqa: S105
CONFIRM_REFUSED = {
    ConfirmOutcome.REVOKED: "fleet node is revoked",
    ConfirmOutcome.NOT_AWAITING: "fleet node is not awaiting confirmation",
    ConfirmOutcome.CODE_EXPIRED: "the fleet node's enrollment code expired before confirmation",
}
_STATUS = {
    "AWAITING_CONFIRMATION": (
        m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_AWAITING_CONFIRMATION
    ),
    "CONFIRMED": m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED,
    "REVOKED": m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_REVOKED,
}
_PAGE_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PAGE_TOKEN_BODY = re.compile(r"n:([1-9][0-9]{0,18})")


def encode_page_token(last_id: int) -> str:
    """Opaque to callers: the keyset position (the last id of the page)."""
    return base64.urlsafe_b64encode(f"n:{last_id}".encode()).rstrip(b"=").decode()


def decode_page_token(token: str) -> int | None:
    if not token:
        return None
    if not _PAGE_TOKEN.fullmatch(token):
        raise InvalidArgument(BAD_PAGE_TOKEN)
    try:
        body = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(BAD_PAGE_TOKEN) from None
    match = _PAGE_TOKEN_BODY.fullmatch(body)
    if match is None or int(match.group(1)) > INT64_MAX:  # ids are bigint in PostgreSQL
        raise InvalidArgument(BAD_PAGE_TOKEN)
    return int(match.group(1))


def connectivity_of(
    last_seen_at: datetime.datetime | None, online_since: datetime.datetime
) -> m.Connectivity:
    """The same rule LIST_NODES filters with (SPEC 4.5)."""
    if last_seen_at is None:
        return m.Connectivity.CONNECTIVITY_NEVER_SEEN
    if last_seen_at >= online_since:
        return m.Connectivity.CONNECTIVITY_ONLINE
    return m.Connectivity.CONNECTIVITY_OFFLINE


class Admin:
    def __init__(
        self,
        db: Database,
        enrollment: Enrollment,
        config: Config,
        metrics: Metrics,
        clock: Clock,
        on_revoked: Callable[[int], None] = lambda _node_id: None,
    ) -> None:
        self._db = db
        self._on_revoked = on_revoked
        self._enrollment = enrollment
        self._config = config
        self._metrics = metrics
        self._clock = clock

    async def resolve_token(self, token: str) -> AdminPrincipal:
        if not s.looks_like_admin_token(token):
            self._metrics.auth_failures.labels(reason="invalid_admin_token").inc()
            raise Unauthenticated(INVALID_TOKEN)
        token_hash = s.digest(token)
        row = await self._db.find_admin_token(token_hash)
        if row is None or not s.same(bytes(row[3]), token_hash):
            self._metrics.auth_failures.labels(reason="invalid_admin_token").inc()
            raise Unauthenticated(INVALID_TOKEN)
        token_id, org_id, role, _ = row
        return AdminPrincipal(org_id=int(org_id), role=Role(role), token_id=int(token_id))

    @staticmethod
    def _require_admin(p: AdminPrincipal) -> None:
        if p.role is not Role.ADMIN:
            raise PermissionDenied(NEEDS_ADMIN)

    async def create_code(
        self, p: AdminPrincipal, req: m.CreateEnrollmentCodeRequest
    ) -> m.CreateEnrollmentCodeResponse:
        self._require_admin(p)
        ttl = req.ttl_seconds if req.ttl_seconds is not None else m.DEFAULT_CODE_TTL_SECONDS
        new = await self._enrollment.create_code(p.org_id, p.token_id, float(ttl))
        return m.CreateEnrollmentCodeResponse(
            code=new.code,
            expires_at=new.expires_at,
            pending_enrollment_id=m.Int64(new.pending_enrollment_id),
        )

    async def list_nodes(
        self, p: AdminPrincipal, req: m.ListFleetNodesRequest
    ) -> m.ListFleetNodesResponse:
        page_size = req.page_size or m.DEFAULT_PAGE_SIZE
        before_id = decode_page_token(req.page_token)
        now = self._clock()
        online_since = now - datetime.timedelta(seconds=self._config.offline_after_seconds)
        rows = await self._db.list_nodes(
            p.org_id, before_id, page_size + 1, req.connectivity.value, online_since
        )
        page, more = rows[:page_size], len(rows) > page_size
        nodes = tuple(self._summary(row, online_since) for row in page)
        next_token = encode_page_token(int(page[-1][0])) if more and page else ""
        return m.ListFleetNodesResponse(fleet_nodes=nodes, next_page_token=next_token)

    @staticmethod
    def _summary(row: tuple[object, ...], online_since: datetime.datetime) -> m.FleetNodeSummary:
        node_id, name, status, fingerprint, created_at, last_seen_at, skew_ms = row
        assert isinstance(created_at, datetime.datetime)
        assert last_seen_at is None or isinstance(last_seen_at, datetime.datetime)
        last_seen = None if last_seen_at is None else last_seen_at.astimezone(datetime.UTC)
        return m.FleetNodeSummary(
            fleet_node_id=m.Int64(int(str(node_id))),
            name=str(name),
            enrollment_status=_STATUS[str(status)],
            identity_fingerprint=str(fingerprint),
            created_at=created_at.astimezone(datetime.UTC),
            last_seen_at=last_seen,
            connectivity=connectivity_of(last_seen, online_since),
            clock_skew_ms=None if skew_ms is None else m.Int64(int(str(skew_ms))),
        )

    async def confirm(
        self, p: AdminPrincipal, req: m.ConfirmFleetNodeRequest
    ) -> m.ConfirmFleetNodeResponse:
        self._require_admin(p)
        api_key = s.new_api_key()
        outcome = await self._db.confirm_node(
            p.org_id, req.fleet_node_id, self._clock(), s.digest(api_key)
        )
        if outcome is ConfirmOutcome.NOT_FOUND:
            raise NotFound(NODE_NOT_FOUND)
        if outcome is not ConfirmOutcome.CONFIRMED:
            raise FailedPrecondition(CONFIRM_REFUSED[outcome])
        logger.info("fleet node confirmed fleet_node_id=%s", req.fleet_node_id)
        return m.ConfirmFleetNodeResponse(api_key=api_key)

    async def revoke(self, p: AdminPrincipal, req: m.RevokeFleetNodeRequest) -> m.Empty:
        self._require_admin(p)
        if not await self._db.revoke_node(p.org_id, req.fleet_node_id, self._clock()):
            raise NotFound(NODE_NOT_FOUND)
        # This replica forgets the node at once; the others through NOTIFY.
        self._on_revoked(req.fleet_node_id)
        logger.info("fleet node revoked fleet_node_id=%s", req.fleet_node_id)
        return m.Empty()
