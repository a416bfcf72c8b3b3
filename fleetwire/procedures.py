"""The procedures of both services: path, request type, response type."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from fleetwire import messages as m

Req = TypeVar("Req")
Resp = TypeVar("Resp")

GATEWAY_SERVICE = "fleetnodegateway.v1.FleetNodeGatewayService"
ADMIN_SERVICE = "fleetnodeadmin.v1.FleetNodeAdminService"


@attrs.frozen
class Procedure(Generic[Req, Resp]):
    service: str
    method: str
    request_type: type[Req]
    response_type: type[Resp]

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"


REGISTER = Procedure(GATEWAY_SERVICE, "Register", m.RegisterRequest, m.RegisterResponse)
BEGIN_AUTH_HANDSHAKE = Procedure(
    GATEWAY_SERVICE, "BeginAuthHandshake", m.BeginAuthHandshakeRequest, m.BeginAuthHandshakeResponse
)
COMPLETE_AUTH_HANDSHAKE = Procedure(
    GATEWAY_SERVICE,
    "CompleteAuthHandshake",
    m.CompleteAuthHandshakeRequest,
    m.CompleteAuthHandshakeResponse,
)
UPLOAD_HEARTBEAT = Procedure(
    GATEWAY_SERVICE, "UploadHeartbeat", m.UploadHeartbeatRequest, m.UploadHeartbeatResponse
)
UPLOAD_TELEMETRY = Procedure(GATEWAY_SERVICE, "UploadTelemetry", m.Empty, m.Empty)
UPLOAD_EVENTS = Procedure(GATEWAY_SERVICE, "UploadEvents", m.Empty, m.Empty)

CREATE_ENROLLMENT_CODE = Procedure(
    ADMIN_SERVICE,
    "CreateEnrollmentCode",
    m.CreateEnrollmentCodeRequest,
    m.CreateEnrollmentCodeResponse,
)
LIST_FLEET_NODES = Procedure(
    ADMIN_SERVICE, "ListFleetNodes", m.ListFleetNodesRequest, m.ListFleetNodesResponse
)
CONFIRM_FLEET_NODE = Procedure(
    ADMIN_SERVICE, "ConfirmFleetNode", m.ConfirmFleetNodeRequest, m.ConfirmFleetNodeResponse
)
REVOKE_FLEET_NODE = Procedure(ADMIN_SERVICE, "RevokeFleetNode", m.RevokeFleetNodeRequest, m.Empty)
LIST_ENROLLMENT_CODES = Procedure(
    ADMIN_SERVICE,
    "ListEnrollmentCodes",
    m.ListEnrollmentCodesRequest,
    m.ListEnrollmentCodesResponse,
)
REVOKE_ENROLLMENT_CODE = Procedure(
    ADMIN_SERVICE, "RevokeEnrollmentCode", m.RevokeEnrollmentCodeRequest, m.Empty
)
LIST_FLEET_NODE_EVENTS = Procedure(
    ADMIN_SERVICE,
    "ListFleetNodeEvents",
    m.ListFleetNodeEventsRequest,
    m.ListFleetNodeEventsResponse,
)
GET_FLEET_SUMMARY = Procedure(ADMIN_SERVICE, "GetFleetSummary", m.Empty, m.GetFleetSummaryResponse)

ALL: tuple[Procedure[object, object], ...] = (
    REGISTER,
    BEGIN_AUTH_HANDSHAKE,
    COMPLETE_AUTH_HANDSHAKE,
    UPLOAD_HEARTBEAT,
    UPLOAD_TELEMETRY,
    UPLOAD_EVENTS,
    CREATE_ENROLLMENT_CODE,
    LIST_FLEET_NODES,
    CONFIRM_FLEET_NODE,
    REVOKE_FLEET_NODE,
    LIST_ENROLLMENT_CODES,
    REVOKE_ENROLLMENT_CODE,
    LIST_FLEET_NODE_EVENTS,
    GET_FLEET_SUMMARY,
)  # type: ignore[assignment]
