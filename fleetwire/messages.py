"""The wire messages of both services, as frozen attrs classes.

Field names are the proto field names (snake_case); the codec writes them in
lowerCamelCase. ``Int64`` fields travel as decimal strings, ``Int32`` as numbers.
A field whose default is ``None`` has presence: it is written whenever it is set,
even to 0. Other fields are omitted at their default (proto3).

Validators encode the request rules of SPEC section 2; a message that fails them
cannot be built, so the gateway never sees one.
"""

from __future__ import annotations

import datetime
import enum
from typing import NewType

import attrs

from fleetwire.validators import (
    INT64_MAX,
    FieldError,
    exact_bytes,
    int_range,
    length,
    optional_exact_bytes,
    printable_text,
    required,
)

Int64 = NewType("Int64", int)
Int32 = NewType("Int32", int)
Timestamp = datetime.datetime

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_CODE_TTL_SECONDS = 3600
MIN_CODE_TTL_SECONDS = 60
MAX_CODE_TTL_SECONDS = 86400  # a confirmation code: one working day
MAX_PRE_APPROVED_CODE_TTL_SECONDS = 30 * 86400  # a rollout may take weeks
MAX_CODE_USES = 100_000
MAX_FACT_CHARS = 255


class EnrollmentStatus(enum.Enum):
    ENROLLMENT_STATUS_UNSPECIFIED = 0
    ENROLLMENT_STATUS_PENDING = 1
    ENROLLMENT_STATUS_CONFIRMED = 2  # a pre-approved code confirmed the node (SPEC 3.8)


class FleetNodeEnrollmentStatus(enum.Enum):
    FLEET_NODE_ENROLLMENT_STATUS_UNSPECIFIED = 0
    FLEET_NODE_ENROLLMENT_STATUS_PENDING = 1
    FLEET_NODE_ENROLLMENT_STATUS_AWAITING_CONFIRMATION = 2
    FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED = 3
    FLEET_NODE_ENROLLMENT_STATUS_REVOKED = 4


class Connectivity(enum.Enum):
    CONNECTIVITY_UNSPECIFIED = 0
    CONNECTIVITY_ONLINE = 1
    CONNECTIVITY_OFFLINE = 2
    CONNECTIVITY_NEVER_SEEN = 3
    CONNECTIVITY_STOPPED = 4  # said goodbye (SPEC 4.10) and not heard from since


class EnrollmentCodeState(enum.Enum):
    ENROLLMENT_CODE_STATE_UNSPECIFIED = 0
    ENROLLMENT_CODE_STATE_OPEN = 1
    ENROLLMENT_CODE_STATE_USED_UP = 2
    ENROLLMENT_CODE_STATE_EXPIRED = 3
    ENROLLMENT_CODE_STATE_REVOKED = 4


class FleetNodeEventKind(enum.Enum):
    FLEET_NODE_EVENT_KIND_UNSPECIFIED = 0
    FLEET_NODE_EVENT_KIND_REGISTERED = 1
    FLEET_NODE_EVENT_KIND_CONFIRMED = 2
    FLEET_NODE_EVENT_KIND_REVOKED = 3
    FLEET_NODE_EVENT_KIND_ONLINE = 4
    FLEET_NODE_EVENT_KIND_OFFLINE = 5
    FLEET_NODE_EVENT_KIND_STOPPED = 6
    FLEET_NODE_EVENT_KIND_REBOOTED = 7


_positive_id = int_range(1, INT64_MAX)


@attrs.frozen
class Empty:
    """A message without fields (RevokeFleetNode's response, the unimplemented uploads)."""


# --- fleetnodegateway.v1.FleetNodeGatewayService ---------------------------------


@attrs.frozen
class RegisterRequest:
    enrollment_token: str = attrs.field(default="", validator=length(20, 512), repr=False)
    name: str = attrs.field(default="", validator=length(1, 255))
    identity_pubkey: bytes = attrs.field(default=b"", validator=exact_bytes(32))
    # ed25519 over fleetwire.identity.register_message(enrollment_token); required for a
    # pre-approved code, verified whenever present (SPEC 3.8).
    registration_signature: bytes = attrs.field(default=b"", validator=optional_exact_bytes(64))


@attrs.frozen
class RegisterResponse:
    fleet_node_id: Int64 = Int64(0)
    enrollment_status: EnrollmentStatus = EnrollmentStatus.ENROLLMENT_STATUS_UNSPECIFIED
    identity_fingerprint: str = ""
    api_key: str = attrs.field(default="", repr=False)  # pre-approved codes only


@attrs.frozen
class BeginAuthHandshakeRequest:
    api_key: str = attrs.field(default="", validator=length(20, 512), repr=False)
    identity_pubkey: bytes = attrs.field(default=b"", validator=exact_bytes(32))


@attrs.frozen
class BeginAuthHandshakeResponse:
    challenge: bytes = b""
    expires_at: Timestamp | None = None


@attrs.frozen
class CompleteAuthHandshakeRequest:
    challenge: bytes = attrs.field(default=b"", validator=length(16, 64, "bytes"))
    signature: bytes = attrs.field(default=b"", validator=exact_bytes(64))


@attrs.frozen
class CompleteAuthHandshakeResponse:
    session_token: str = attrs.field(default="", repr=False)
    expires_at: Timestamp | None = None


@attrs.frozen
class NodeFacts:
    """What a node says about itself (SPEC 4.11); every field printable, <= 255 chars."""

    agent_version: str = attrs.field(default="", validator=printable_text(MAX_FACT_CHARS))
    hostname: str = attrs.field(default="", validator=printable_text(MAX_FACT_CHARS))
    os: str = attrs.field(default="", validator=printable_text(MAX_FACT_CHARS))
    boot_id: str = attrs.field(default="", validator=printable_text(MAX_FACT_CHARS))
    python_version: str = attrs.field(default="", validator=printable_text(MAX_FACT_CHARS))


@attrs.frozen
class UploadHeartbeatRequest:
    sent_at: Timestamp | None = attrs.field(default=None, validator=required)
    stopping: bool = False  # the daemon's goodbye (SPEC 4.10)
    facts: NodeFacts | None = None  # sent after start and when they change (SPEC 4.11)


@attrs.frozen
class UploadHeartbeatResponse:
    received_at: Timestamp | None = None
    heartbeat_interval_seconds: Int32 = Int32(0)


# --- fleetnodeadmin.v1.FleetNodeAdminService --------------------------------------


@attrs.frozen
class CreateEnrollmentCodeRequest:
    ttl_seconds: Int32 | None = attrs.field(
        default=None,
        validator=int_range(MIN_CODE_TTL_SECONDS, MAX_PRE_APPROVED_CODE_TTL_SECONDS, optional=True),
    )
    pre_approved: bool = False
    # None (absent) means 1; more than 1 only for a pre-approved code.
    max_uses: Int32 | None = attrs.field(
        default=None, validator=int_range(1, MAX_CODE_USES, optional=True)
    )

    def __attrs_post_init__(self) -> None:
        if not self.pre_approved:
            if self.ttl_seconds is not None and self.ttl_seconds > MAX_CODE_TTL_SECONDS:
                raise FieldError(
                    "ttl_seconds",
                    f"must be between {MIN_CODE_TTL_SECONDS} and {MAX_CODE_TTL_SECONDS} "
                    f"(up to {MAX_PRE_APPROVED_CODE_TTL_SECONDS} for a pre-approved code)",
                )
            if self.max_uses is not None and self.max_uses > 1:
                raise FieldError("max_uses", "more than 1 needs preApproved")

    @property
    def uses_allowed(self) -> int:
        return 1 if self.max_uses is None else self.max_uses


@attrs.frozen
class CreateEnrollmentCodeResponse:
    code: str = attrs.field(default="", repr=False)
    expires_at: Timestamp | None = None
    pending_enrollment_id: Int64 = Int64(0)
    pre_approved: bool = False
    max_uses: Int32 = Int32(0)


@attrs.frozen
class ListFleetNodesRequest:
    # 0 (absent) means DEFAULT_PAGE_SIZE, as proto3 cannot tell absent from 0.
    page_size: Int32 = attrs.field(default=Int32(0), validator=int_range(0, MAX_PAGE_SIZE))
    page_token: str = attrs.field(default="", validator=length(0, 512))
    connectivity: Connectivity = Connectivity.CONNECTIVITY_UNSPECIFIED


@attrs.frozen
class FleetNodeSummary:
    fleet_node_id: Int64 = Int64(0)
    name: str = ""
    enrollment_status: FleetNodeEnrollmentStatus = (
        FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_UNSPECIFIED
    )
    identity_fingerprint: str = ""
    created_at: Timestamp | None = None
    last_seen_at: Timestamp | None = None
    connectivity: Connectivity = Connectivity.CONNECTIVITY_UNSPECIFIED
    clock_skew_ms: Int64 | None = None
    facts: NodeFacts | None = None


@attrs.frozen
class ListFleetNodesResponse:
    fleet_nodes: tuple[FleetNodeSummary, ...] = ()
    next_page_token: str = ""


@attrs.frozen
class ConfirmFleetNodeRequest:
    fleet_node_id: Int64 = attrs.field(default=Int64(0), validator=_positive_id)


@attrs.frozen
class ConfirmFleetNodeResponse:
    api_key: str = attrs.field(default="", repr=False)


@attrs.frozen
class RevokeFleetNodeRequest:
    fleet_node_id: Int64 = attrs.field(default=Int64(0), validator=_positive_id)


@attrs.frozen
class ListEnrollmentCodesRequest:
    page_size: Int32 = attrs.field(default=Int32(0), validator=int_range(0, MAX_PAGE_SIZE))
    page_token: str = attrs.field(default="", validator=length(0, 512))
    include_closed: bool = False


@attrs.frozen
class EnrollmentCodeSummary:
    """A code as operators see it: never the code itself."""

    pending_enrollment_id: Int64 = Int64(0)
    created_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    pre_approved: bool = False
    max_uses: Int32 = Int32(0)
    uses: Int32 = Int32(0)
    state: EnrollmentCodeState = EnrollmentCodeState.ENROLLMENT_CODE_STATE_UNSPECIFIED


@attrs.frozen
class ListEnrollmentCodesResponse:
    enrollment_codes: tuple[EnrollmentCodeSummary, ...] = ()
    next_page_token: str = ""


@attrs.frozen
class RevokeEnrollmentCodeRequest:
    pending_enrollment_id: Int64 = attrs.field(default=Int64(0), validator=_positive_id)


@attrs.frozen
class FleetNodeEvent:
    event_id: Int64 = Int64(0)
    fleet_node_id: Int64 = Int64(0)
    kind: FleetNodeEventKind = FleetNodeEventKind.FLEET_NODE_EVENT_KIND_UNSPECIFIED
    occurred_at: Timestamp | None = None


@attrs.frozen
class ListFleetNodeEventsRequest:
    after_event_id: Int64 = attrs.field(default=Int64(0), validator=int_range(0, INT64_MAX))
    fleet_node_id: Int64 = attrs.field(default=Int64(0), validator=int_range(0, INT64_MAX))
    page_size: Int32 = attrs.field(default=Int32(0), validator=int_range(0, MAX_PAGE_SIZE))


@attrs.frozen
class ListFleetNodeEventsResponse:
    events: tuple[FleetNodeEvent, ...] = ()
    # Always written (even "0"): a client pages on with it (SPEC 2.2).
    last_event_id: Int64 | None = None


@attrs.frozen
class GetFleetSummaryResponse:
    # Counts are always written, zeros included: a dashboard reads every key.
    awaiting_confirmation: Int64 | None = None
    online: Int64 | None = None
    offline: Int64 | None = None
    never_seen: Int64 | None = None
    stopped: Int64 | None = None
    recently_offline: tuple[FleetNodeSummary, ...] = ()
