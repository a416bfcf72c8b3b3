"""What rows leave the store as: frozen records and enums, never tuples.

Timestamps are aware UTC datetimes, ``bytea`` columns are ``bytes``. The enums here are
the store's own words (a node's lifecycle, a listing filter); the services translate
them to and from the wire enums, so no wire value reaches SQL.
"""

from __future__ import annotations

import datetime
import enum

import attrs

from gateway.principals import Role


class NodeStatus(enum.Enum):
    """``fleet_nodes.status``: AWAITING_CONFIRMATION -> CONFIRMED -> REVOKED;
    AWAITING_CONFIRMATION -> EXPIRED (the sweeper)."""

    AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION"
    CONFIRMED = "CONFIRMED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


class ConnectivityFilter(enum.Enum):
    """Which nodes a listing returns, by liveness computed with the gateway's clock
    (STOPPED: said goodbye and not heard from since)."""

    ANY = 0
    ONLINE = 1
    OFFLINE = 2
    NEVER_SEEN = 3
    STOPPED = 4


class Liveness(enum.Enum):
    """``fleet_nodes.liveness``: the connectivity the events recorded (SPEC 4.9, 4.10).
    NEVER_SEEN -> ONLINE (a heartbeat) -> OFFLINE (the offline scan) -> ONLINE ...;
    any -> STOPPED (a goodbye) -> ONLINE (the next heartbeat)."""

    NEVER_SEEN = "NEVER_SEEN"
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    STOPPED = "STOPPED"


class EventKind(enum.Enum):
    """``fleet_node_events.kind``."""

    REGISTERED = "REGISTERED"
    CONFIRMED = "CONFIRMED"
    REVOKED = "REVOKED"
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    STOPPED = "STOPPED"
    REBOOTED = "REBOOTED"


class CodeState(enum.Enum):
    """An enrollment code as operators see it, computed when read (SPEC 3.9)."""

    OPEN = "open"
    USED_UP = "used_up"
    EXPIRED = "expired"
    REVOKED = "revoked"


class RegisterOutcome(enum.Enum):
    REGISTERED = "registered"  # a new node (a use consumed)
    RETRIED = "retried"  # the node this code and key registered before (no use consumed)
    INVALID_CODE = "invalid_code"  # unknown, used up, expired or revoked
    SIGNATURE_REQUIRED = "signature_required"  # a pre-approved code without a signature


class ConfirmOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    NOT_FOUND = "not_found"
    REVOKED = "revoked"
    NOT_AWAITING = "not_awaiting"
    CODE_EXPIRED = "code_expired"


@attrs.frozen
class AdminTokenRecord:
    """A live admin token."""

    token_id: int
    org_id: int
    role: Role
    token_hash: bytes = attrs.field(repr=False)


@attrs.frozen
class AdminTokenSummary:
    """An admin token as ``list-admin-tokens`` shows it (never the token or its hash)."""

    token_id: int
    role: Role
    label: str
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None


@attrs.frozen
class ApiKeyRecord:
    """A live api key of a live, confirmed node."""

    fleet_node_id: int
    org_id: int
    identity_pubkey: bytes
    key_hash: bytes = attrs.field(repr=False)


@attrs.frozen
class ChallengeRecord:
    """A challenge just consumed (it may have expired: the caller checks)."""

    fleet_node_id: int
    org_id: int
    expires_at: datetime.datetime
    identity_pubkey: bytes


@attrs.frozen
class SessionRecord:
    """A live session of a live, confirmed node."""

    session_id: int
    fleet_node_id: int
    org_id: int
    expires_at: datetime.datetime
    token_hash: bytes = attrs.field(repr=False)


@attrs.frozen
class NodeFactsRecord:
    """What a node said about itself (SPEC 4.11), as stored."""

    agent_version: str
    hostname: str
    os: str
    boot_id: str
    python_version: str


@attrs.frozen
class NodeRecord:
    """A listed (live) node as operators see it."""

    fleet_node_id: int
    name: str
    status: NodeStatus
    identity_fingerprint: str
    created_at: datetime.datetime
    last_seen_at: datetime.datetime | None
    clock_skew_ms: int | None
    liveness: Liveness = Liveness.NEVER_SEEN
    facts: NodeFactsRecord | None = None


@attrs.frozen
class EventRecord:
    event_id: int
    fleet_node_id: int
    kind: EventKind
    occurred_at: datetime.datetime


@attrs.frozen
class FleetCounts:
    """One organization's listed nodes, counted when read (GetFleetSummary)."""

    awaiting_confirmation: int
    online: int
    offline: int
    never_seen: int
    stopped: int


@attrs.frozen
class LivenessCount:
    """One row of the fleet_nodes gauge: an organization's confirmed nodes in one state
    (``liveness`` None: the organization has no confirmed node)."""

    org_name: str
    liveness: Liveness | None
    count: int


@attrs.frozen
class Registration:
    """What Register did: for REGISTERED and RETRIED the node, and whether its code was
    pre-approved (then the node is confirmed and holds the api key Register offered)."""

    outcome: RegisterOutcome
    fleet_node_id: int = 0
    pre_approved: bool = False


@attrs.frozen
class CodeRecord:
    """An enrollment code as listed (never the code or its hash)."""

    pending_enrollment_id: int
    created_at: datetime.datetime
    expires_at: datetime.datetime
    pre_approved: bool
    max_uses: int
    uses: int
    state: CodeState


@attrs.frozen
class LastSeenWrite:
    """One node's entry in a group-commit flush."""

    fleet_node_id: int
    seen_at: datetime.datetime
    skew_ms: int
    stopping: bool = False  # a goodbye (SPEC 4.10): written at once, STOPPED
    facts: NodeFactsRecord | None = None  # stored with this write (SPEC 4.11)


@attrs.frozen
class LastSeenResult:
    """What a flush did for one node: ``written`` (this flush advanced ``last_seen_at``),
    else ``live`` (another writer advanced it within the window) or gone."""

    fleet_node_id: int
    written: bool
    live: bool
    last_seen_at: datetime.datetime | None


@attrs.frozen
class SweepCounts:
    challenges: int
    sessions: int
    enrollments: int
    nodes: int

    def __bool__(self) -> bool:
        return any((self.challenges, self.sessions, self.enrollments, self.nodes))


def utc(moment: datetime.datetime) -> datetime.datetime:
    """A timestamp as the store hands it out: aware, in UTC."""
    return moment.astimezone(datetime.UTC)


def utc_or_none(moment: datetime.datetime | None) -> datetime.datetime | None:
    return None if moment is None else utc(moment)
