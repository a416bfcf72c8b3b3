"""A scripted admin API behind fleetctl's HTTP seam (``httpx.MockTransport``).

Requests are decoded with fleetwire's codec, as the gateway decodes them; answers are real
messages, paged as the gateway pages them (small pages, so paging is exercised). Connect
errors can be queued per method. The real gateway is exercised by the e2e tests.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import httpx

from fleetctl.__main__ import run
from fleetctl.context import Clock
from fleetwire import codec
from fleetwire import messages as m
from fleetwire import procedures as p
from fleetwire.codes import Code, ConnectError

TOKEN = "fleetadm_0123abcd_" + "A" * 43
ENV = {"FLEET_ADMIN_TOKEN": TOKEN, "FLEET_SERVER_URL": "https://gw.test"}
NOW = datetime.datetime(2026, 11, 27, 10, 0, 0, tzinfo=datetime.UTC)
CODE = "c0de" * 10 + "xyz"
API_KEY = "fleet_0123abcd_" + "K" * 43
_PROCEDURES = {procedure.path: procedure for procedure in p.ALL}
_OPEN = m.EnrollmentCodeState.ENROLLMENT_CODE_STATE_OPEN
_ANY_CONNECTIVITY = m.Connectivity.CONNECTIVITY_UNSPECIFIED


def at(seconds_from_now: float) -> datetime.datetime:
    return NOW + datetime.timedelta(seconds=seconds_from_now)


def node(node_id: int, **fields: Any) -> m.FleetNodeSummary:
    defaults: dict[str, Any] = {
        "name": f"node-{node_id}",
        "enrollment_status": m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED,
        "identity_fingerprint": "00112233aabbccdd",
        "created_at": at(-86400),
    }
    return m.FleetNodeSummary(fleet_node_id=m.Int64(node_id), **(defaults | fields))


def event(event_id: int, node_id: int, kind: str, seconds_from_now: float) -> m.FleetNodeEvent:
    return m.FleetNodeEvent(
        m.Int64(event_id),
        m.Int64(node_id),
        m.FleetNodeEventKind[f"FLEET_NODE_EVENT_KIND_{kind}"],
        at(seconds_from_now),
    )


def error(code: Code, message: str = "", retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return httpx.Response(
        code.http_status, headers=headers, content=ConnectError(code, message).to_json()
    )


def _page(items: list[Any], token: str, size: int) -> tuple[tuple[Any, ...], str]:
    start = int(token or 0)
    more = start + size < len(items)
    return tuple(items[start : start + size]), str(start + size) if more else ""


@attrs.define
class ScriptedAdmin:
    """FleetNodeAdminService as fleetctl sees it; ``calls`` holds every decoded request."""

    nodes: list[m.FleetNodeSummary] = attrs.Factory(list)
    codes: list[m.EnrollmentCodeSummary] = attrs.Factory(list)
    events: list[m.FleetNodeEvent] = attrs.Factory(list)
    summary: m.GetFleetSummaryResponse = attrs.Factory(m.GetFleetSummaryResponse)
    page_size: int = 2
    calls: list[tuple[str, Any]] = attrs.Factory(list)
    # Per method, first in first out: an answer to give instead of the scripted one, an
    # exception to raise from the transport (a network failure, Ctrl-C), or None for "answer
    # this call as scripted".
    failures: dict[str, list[httpx.Response | BaseException | None]] = attrs.Factory(dict)

    def fail(self, method: str, *answers: httpx.Response | BaseException | None) -> None:
        self.failures.setdefault(method, []).extend(answers)

    def requests(self, method: str) -> list[Any]:
        return [request for name, request in self.calls if name == method]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return error(Code.UNAUTHENTICATED, "invalid admin token")
        procedure = _PROCEDURES.get(request.url.path)
        if procedure is None:
            return error(Code.UNIMPLEMENTED)
        try:
            decoded = codec.decode(request.content, procedure.request_type)
        except codec.DecodeError as exc:
            return error(Code.INVALID_ARGUMENT, str(exc))
        self.calls.append((procedure.method, decoded))
        queued = self.failures.get(procedure.method)
        instead = queued.pop(0) if queued else None
        if isinstance(instead, BaseException):
            raise instead
        if instead is not None:
            return instead
        answer: Callable[[Any], Any] = getattr(self, procedure.method)
        try:
            return httpx.Response(200, content=codec.encode(answer(decoded)))
        except ConnectError as exc:
            return httpx.Response(exc.code.http_status, content=exc.to_json())

    def _size(self, requested: int) -> int:
        return min(requested or m.DEFAULT_PAGE_SIZE, self.page_size)

    # --- the procedures, named as on the wire ------------------------------------------

    def ListFleetNodes(self, request: m.ListFleetNodesRequest) -> m.ListFleetNodesResponse:
        wanted = request.connectivity
        listed = [n for n in self.nodes if wanted in (n.connectivity, _ANY_CONNECTIVITY)]
        page, token = _page(listed, request.page_token, self._size(request.page_size))
        return m.ListFleetNodesResponse(page, token)

    def ListEnrollmentCodes(
        self, request: m.ListEnrollmentCodesRequest
    ) -> m.ListEnrollmentCodesResponse:
        listed = [c for c in self.codes if request.include_closed or c.state is _OPEN]
        page, token = _page(listed, request.page_token, self._size(request.page_size))
        return m.ListEnrollmentCodesResponse(page, token)

    def ListFleetNodeEvents(
        self, request: m.ListFleetNodeEventsRequest
    ) -> m.ListFleetNodeEventsResponse:
        after = request.after_event_id
        listed = [
            e
            for e in self.events
            if e.event_id > after and request.fleet_node_id in (0, e.fleet_node_id)
        ][: self._size(request.page_size)]
        last = listed[-1].event_id if listed else after
        return m.ListFleetNodeEventsResponse(tuple(listed), m.Int64(last))

    def GetFleetSummary(self, _: m.Empty) -> m.GetFleetSummaryResponse:
        return self.summary

    def CreateEnrollmentCode(
        self, request: m.CreateEnrollmentCodeRequest
    ) -> m.CreateEnrollmentCodeResponse:
        ttl = m.DEFAULT_CODE_TTL_SECONDS if request.ttl_seconds is None else request.ttl_seconds
        return m.CreateEnrollmentCodeResponse(
            code=CODE,
            expires_at=at(ttl),
            pending_enrollment_id=m.Int64(31),
            pre_approved=request.pre_approved,
            max_uses=m.Int32(request.uses_allowed),
        )

    def ConfirmFleetNode(self, request: m.ConfirmFleetNodeRequest) -> m.ConfirmFleetNodeResponse:
        self._find(self.nodes, "fleet_node_id", request.fleet_node_id, "fleet node")
        return m.ConfirmFleetNodeResponse(api_key=API_KEY)

    def RevokeFleetNode(self, request: m.RevokeFleetNodeRequest) -> m.Empty:
        found = self._find(self.nodes, "fleet_node_id", request.fleet_node_id, "fleet node")
        self.nodes.remove(found)
        return m.Empty()

    def RevokeEnrollmentCode(self, request: m.RevokeEnrollmentCodeRequest) -> m.Empty:
        found = self._find(
            self.codes, "pending_enrollment_id", request.pending_enrollment_id, "enrollment code"
        )
        revoked = m.EnrollmentCodeState.ENROLLMENT_CODE_STATE_REVOKED
        self.codes[self.codes.index(found)] = attrs.evolve(found, state=revoked)
        return m.Empty()

    @staticmethod
    def _find(items: Iterable[Any], field: str, wanted: int, what: str) -> Any:
        for item in items:
            if getattr(item, field) == wanted:
                return item
        raise ConnectError(Code.NOT_FOUND, f"{what} not found")


def fleetctl(
    argv: list[str], admin: ScriptedAdmin, env: dict[str, str] | None = None, **clock: Any
) -> int:
    """Run fleetctl against ``admin`` with the clock at NOW (``clock`` overrides its parts)."""
    return run(
        argv,
        ENV if env is None else env,
        httpx.MockTransport(admin),
        Clock(now=lambda: NOW, **clock),
    )
