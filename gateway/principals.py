"""Who is calling: the result of authenticating a request, passed to the services."""

from __future__ import annotations

import datetime
import enum

import attrs


class Role(enum.Enum):
    ADMIN = "admin"
    VIEWER = "viewer"


@attrs.frozen
class NodePrincipal:
    """A node holding a live session (resolved from a bearer session token)."""

    fleet_node_id: int
    org_id: int
    session_id: int
    session_expires_at: datetime.datetime


@attrs.frozen
class AdminPrincipal:
    """An operator holding an admin token of one organization."""

    org_id: int
    role: Role
    token_id: int
