"""The RPC table: each procedure bound to the service method that serves it.

The constructors (``public``, ``for_node``, ``for_admin``) take the service method with its
own signature, so mypy checks that it accepts the procedure's request type (and the
principal the procedure's authentication yields) and returns its response type; the
adapter (``gateway.connect``) then only sees an ``Rpc``.

An operator procedure declares the role it needs here, and only here (``for_admin(...,
role=...)``, no default, so a new procedure cannot forget it): the adapter checks it right
after authentication, before the body is decoded (SPEC 2's order), and the services
never see a principal of the wrong role.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import attrs

from fleetwire import procedures as p
from fleetwire.procedures import Procedure
from gateway.errors import PermissionDenied
from gateway.principals import AdminPrincipal, NodePrincipal, Role
from gateway.services import Services

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Principal = NodePrincipal | AdminPrincipal | None

NEEDS_ADMIN = "this call needs an admin token (the token's role is viewer)"


class AuthKind(enum.Enum):
    NONE = "none"
    NODE = "node"  # bearer session token
    ADMIN = "admin"  # bearer admin token


class Limit(enum.Enum):
    AUTH = "auth"  # per client address
    HEARTBEAT = "heartbeat"  # per node


@attrs.frozen
class Rpc(Generic[Req, Resp]):
    """How one procedure is served: who may call it (and, for an operator, with which
    role), its rate limit, the service call (None: unimplemented, answered after
    authentication)."""

    procedure: Procedure[Req, Resp]
    auth: AuthKind
    invoke: Callable[[Principal, Req], Awaitable[Resp]] | None
    limit: Limit | None = None
    role: Role | None = None  # ADMIN: admin tokens only; VIEWER: viewers too (SPEC 3.6)
    # The body holds a credential the service looks up (an api key): its refusal is a
    # failed authentication, limited like a refused bearer (gateway.admission).
    credential_in_body: bool = False

    @property
    def name(self) -> str:
        return self.procedure.path.lstrip("/")

    def authorize(self, principal: Principal) -> None:
        """Refuse an operator whose token lacks the role (a viewer may only list)."""
        if (
            self.role is Role.ADMIN
            and isinstance(principal, AdminPrincipal)
            and principal.role is not Role.ADMIN
        ):
            raise PermissionDenied(NEEDS_ADMIN)


def public(
    procedure: Procedure[Req, Resp],
    call: Callable[[Req], Awaitable[Resp]],
    *,
    limit: Limit | None = None,
    credential_in_body: bool = False,
) -> Rpc[Req, Resp]:
    """A procedure anyone may call (its credential travels in the body)."""

    async def invoke(_principal: Principal, request: Req) -> Resp:
        return await call(request)

    return Rpc(procedure, AuthKind.NONE, invoke, limit, credential_in_body=credential_in_body)


def for_node(
    procedure: Procedure[Req, Resp],
    call: Callable[[NodePrincipal, Req], Awaitable[Resp]],
    *,
    limit: Limit | None = None,
) -> Rpc[Req, Resp]:
    """A procedure of a node holding a session."""

    async def invoke(principal: Principal, request: Req) -> Resp:
        assert isinstance(principal, NodePrincipal)
        return await call(principal, request)

    return Rpc(procedure, AuthKind.NODE, invoke, limit)


def for_admin(
    procedure: Procedure[Req, Resp],
    call: Callable[[AdminPrincipal, Req], Awaitable[Resp]],
    *,
    role: Role,
) -> Rpc[Req, Resp]:
    """A procedure of an operator holding an admin token of at least ``role``."""

    async def invoke(principal: Principal, request: Req) -> Resp:
        assert isinstance(principal, AdminPrincipal)
        return await call(principal, request)

    return Rpc(procedure, AuthKind.ADMIN, invoke, role=role)


def unimplemented(procedure: Procedure[Req, Resp], auth: AuthKind) -> Rpc[Req, Resp]:
    return Rpc(procedure, auth, None)


def rpc_table(services: Services) -> tuple[Rpc[Any, Any], ...]:
    """Every procedure of both services (SPEC 2.1, 2.2)."""
    enrollment, auth, admin = services.enrollment, services.auth, services.admin
    codes = services.codes
    return (
        public(p.REGISTER, enrollment.register, limit=Limit.AUTH),
        public(p.BEGIN_AUTH_HANDSHAKE, auth.begin, limit=Limit.AUTH, credential_in_body=True),
        public(p.COMPLETE_AUTH_HANDSHAKE, auth.complete, limit=Limit.AUTH),
        for_node(p.UPLOAD_HEARTBEAT, services.heartbeats.record, limit=Limit.HEARTBEAT),
        unimplemented(p.UPLOAD_TELEMETRY, AuthKind.NODE),
        unimplemented(p.UPLOAD_EVENTS, AuthKind.NODE),
        for_admin(p.CREATE_ENROLLMENT_CODE, codes.create_code, role=Role.ADMIN),
        for_admin(p.LIST_FLEET_NODES, admin.list_nodes, role=Role.VIEWER),
        for_admin(p.CONFIRM_FLEET_NODE, admin.confirm, role=Role.ADMIN),
        for_admin(p.REVOKE_FLEET_NODE, admin.revoke, role=Role.ADMIN),
        for_admin(p.LIST_FLEET_NODE_EVENTS, services.events.list_events, role=Role.VIEWER),
        for_admin(p.GET_FLEET_SUMMARY, services.events.summary, role=Role.VIEWER),
        for_admin(p.LIST_ENROLLMENT_CODES, codes.list_codes, role=Role.VIEWER),
        for_admin(p.REVOKE_ENROLLMENT_CODE, codes.revoke_code, role=Role.ADMIN),
    )
