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
    exact_bytes,
    int_range,
    length,
    required,
)

Int64 = NewType("Int64", int)
Int32 = NewType("Int32", int)
Timestamp = datetime.datetime

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_CODE_TTL_SECONDS = 3600


class EnrollmentStatus(enum.Enum):
    ENROLLMENT_STATUS_UNSPECIFIED = 0
    ENROLLMENT_STATUS_PENDING = 1


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


@attrs.frozen
class RegisterResponse:
    fleet_node_id: Int64 = Int64(0)
    enrollment_status: EnrollmentStatus = EnrollmentStatus.ENROLLMENT_STATUS_UNSPECIFIED
    identity_fingerprint: str = ""


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
class UploadHeartbeatRequest:
    sent_at: Timestamp | None = attrs.field(default=None, validator=required)


@attrs.frozen
class UploadHeartbeatResponse:
    received_at: Timestamp | None = None
    heartbeat_interval_seconds: Int32 = Int32(0)


# --- fleetnodeadmin.v1.FleetNodeAdminService --------------------------------------


@attrs.frozen
class CreateEnrollmentCodeRequest:
    ttl_seconds: Int32 | None = attrs.field(
        default=None, validator=int_range(60, 86400, optional=True)
    )


@attrs.frozen
class CreateEnrollmentCodeResponse:
    code: str = attrs.field(default="", repr=False)
    expires_at: Timestamp | None = None
    pending_enrollment_id: Int64 = Int64(0)


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
