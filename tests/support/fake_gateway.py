"""A gateway double for the agent's tests: the Connect JSON of the four node procedures, with
real ed25519 verification (challenges and registration signatures), confirmation and
pre-approved codes with retry-safe Register (SPEC 3.8), sessions and scripted answers, on
the node's (virtual) clock.

Its logic is synchronous, so the same object serves ``httpx.MockTransport`` in process and a
loopback HTTP server (:mod:`tests.support.served_gateway`) for the agent run as a real process.
"""

from __future__ import annotations

import datetime
import secrets
import threading
from collections.abc import Callable

import attrs
import httpx
import nacl.exceptions
import nacl.signing
import trio

from agent.identity import Identity
from fleetwire import codec
from fleetwire import messages as m
from fleetwire.codes import Code, ConnectError
from fleetwire.identity import auth_message, fingerprint, register_message
from fleetwire.procedures import (
    BEGIN_AUTH_HANDSHAKE,
    COMPLETE_AUTH_HANDSHAKE,
    REGISTER,
    UPLOAD_HEARTBEAT,
)

T0 = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
ENROLLMENT_CODE = "enrollcode-" + "Q" * 32
API_KEY = "fleet_0123abcd_" + "K" * 43
PRE_APPROVED_CODE = "preapproved-" + "P" * 31
SERVER_URL = "https://gw.test"


def virtual_wall_clock() -> datetime.datetime:
    """The node's wall clock, moving with Trio's (virtual) clock."""
    return T0 + datetime.timedelta(seconds=trio.current_time())


def _trio_time_or_zero() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # called from the HTTP server thread
        return 0.0


@attrs.define
class FakeNode:
    node_id: int
    name: str
    pubkey: bytes
    api_key: str | None = None
    gone: bool = False


@attrs.frozen
class Call:
    at: float
    method: str
    authorization: str | None
    status: int


class FakeGateway:
    """A gateway double: Register, BeginAuthHandshake, CompleteAuthHandshake, UploadHeartbeat."""

    def __init__(
        self,
        wall_clock: Callable[[], datetime.datetime] = virtual_wall_clock,
        monotonic: Callable[[], float] = _trio_time_or_zero,
    ) -> None:
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.codes = {ENROLLMENT_CODE}  # confirmation codes, one use each
        self.pre_approved_codes: dict[str, int] = {}  # pre-approved code -> uses left
        # (code, key) -> the node they registered: a signed repeat is a retry.
        self.registrations: dict[tuple[str, bytes], int] = {}
        self.register_requests: list[m.RegisterRequest] = []
        self.issued_api_keys: list[str] = []  # by pre-approved Registers
        # The api key a confirmation code's Register binds to the next node: the fake
        # confirms at once.
        self.next_api_key: str | None = API_KEY
        self.nodes: dict[int, FakeNode] = {}
        self.challenges: dict[bytes, tuple[int, datetime.datetime]] = {}
        self.sessions: dict[str, tuple[int, datetime.datetime]] = {}
        self.issued_tokens: list[str] = []
        self.calls: list[Call] = []
        self.heartbeats: list[tuple[float, m.UploadHeartbeatRequest]] = []
        self.heartbeat_received = threading.Event()  # for tests that watch a real process
        self.session_ttl = datetime.timedelta(hours=24)
        self.interval_seconds = 30
        self.clock_offset = datetime.timedelta(0)  # gateway clock minus node clock
        self.down = False
        self.hang = False  # accept requests and never answer
        self.scripted: dict[str, list[httpx.Response]] = {}
        self.failing: dict[str, Callable[[], httpx.Response]] = {}  # every call, until removed
        self.lose_answers: dict[str, int] = {}  # method -> calls applied, answer lost
        self.fingerprint_override: str | None = None
        self.transport = httpx.MockTransport(self.handle)

    # --- operator actions -----------------------------------------------------------

    def add_node(self, identity: Identity, name: str = "node-1") -> FakeNode:
        node = FakeNode(len(self.nodes) + 1, name, identity.public_key, self.next_api_key)
        self.nodes[node.node_id] = node
        return node

    def end_sessions(self) -> None:
        self.sessions.clear()

    def script(self, method: str, *responses: httpx.Response) -> None:
        """The next answers to ``method``, before the fake's own logic."""
        self.scripted.setdefault(method, []).extend(responses)

    def fail(self, method: str, make: Callable[[], httpx.Response]) -> None:
        """Answer every call to ``method`` with ``make()`` until :meth:`recover`."""
        self.failing[method] = make

    def recover(self, method: str) -> None:
        self.failing.pop(method, None)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    # --- the wire -------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.rsplit("/", 1)[-1]
        if self.hang:
            self.calls.append(Call(self.monotonic(), method, None, 0))
            await trio.sleep_forever()
        if self.down:
            self.calls.append(Call(self.monotonic(), method, None, 0))
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        response = self.respond(method, dict(request.headers), request.content)
        authorization = request.headers.get("authorization")
        if self.lose_answers.get(method, 0) > 0:
            # Applied, but the answer never arrives (a connection reset on the way back).
            self.lose_answers[method] -= 1
            self.calls.append(Call(self.monotonic(), method, authorization, 0))
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        self.calls.append(Call(self.monotonic(), method, authorization, response.status_code))
        return response

    def respond(self, method: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        queued = self.scripted.get(method)
        if queued:
            return queued.pop(0)
        if method in self.failing:
            return self.failing[method]()
        handlers: dict[str, Callable[[dict[str, str], bytes], object]] = {
            "Register": self._register,
            "BeginAuthHandshake": self._begin,
            "CompleteAuthHandshake": self._complete,
            "UploadHeartbeat": self._heartbeat,
        }
        try:
            message = handlers[method](headers, body)
        except ConnectError as exc:
            return error_response(exc.code, exc.message)
        except codec.DecodeError as exc:
            return error_response(Code.INVALID_ARGUMENT, str(exc))
        return httpx.Response(
            200, content=codec.encode(message), headers={"Content-Type": "application/json"}
        )

    def _now(self) -> datetime.datetime:
        return self.wall_clock() + self.clock_offset

    def _register(self, _headers: dict[str, str], body: bytes) -> m.RegisterResponse:
        request = codec.decode(body, REGISTER.request_type)
        self.register_requests.append(request)
        code, pubkey = request.enrollment_token, request.identity_pubkey
        signed = bool(request.registration_signature)
        if signed:
            try:
                nacl.signing.VerifyKey(pubkey).verify(
                    register_message(code), request.registration_signature
                )
            except nacl.exceptions.BadSignatureError as exc:
                raise ConnectError(Code.UNAUTHENTICATED, "invalid registration signature") from exc
        pre_approved = code in self.pre_approved_codes
        earlier = self.registrations.get((code, pubkey))
        if signed and earlier is not None and not self.nodes[earlier].gone:
            node = self.nodes[earlier]
            if pre_approved:  # a fresh key; the old one and its session end
                node.api_key = self._new_api_key()
                self.sessions = {t: v for t, v in self.sessions.items() if v[0] != node.node_id}
            return self._registered(node, pre_approved)
        if pre_approved:
            if self.pre_approved_codes[code] < 1:
                raise ConnectError(Code.UNAUTHENTICATED, "invalid enrollment code")
            if not signed:
                raise ConnectError(Code.UNAUTHENTICATED, "invalid registration signature")
        elif code not in self.codes:
            raise ConnectError(Code.UNAUTHENTICATED, "invalid enrollment code")
        for node in self.nodes.values():
            if not node.gone and (node.pubkey == pubkey or node.name == request.name):
                raise ConnectError(
                    Code.FAILED_PRECONDITION, "fleet node identity or name already in use"
                )
        if pre_approved:
            self.pre_approved_codes[code] -= 1
            api_key: str | None = self._new_api_key()
        else:
            self.codes.discard(code)
            api_key = self.next_api_key
        node = FakeNode(len(self.nodes) + 1, request.name, pubkey, api_key)
        self.nodes[node.node_id] = node
        self.registrations[(code, pubkey)] = node.node_id
        return self._registered(node, pre_approved)

    def _new_api_key(self) -> str:
        key = f"fleet_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
        self.issued_api_keys.append(key)
        return key

    def _registered(self, node: FakeNode, pre_approved: bool) -> m.RegisterResponse:
        status = m.EnrollmentStatus
        return m.RegisterResponse(
            fleet_node_id=m.Int64(node.node_id),
            enrollment_status=(
                status.ENROLLMENT_STATUS_CONFIRMED
                if pre_approved
                else status.ENROLLMENT_STATUS_PENDING
            ),
            identity_fingerprint=self.fingerprint_override or fingerprint(node.pubkey),
            api_key=(node.api_key or "") if pre_approved else "",
        )

    def _begin(self, _headers: dict[str, str], body: bytes) -> m.BeginAuthHandshakeResponse:
        request = codec.decode(body, BEGIN_AUTH_HANDSHAKE.request_type)
        node = next(
            (n for n in self.nodes.values() if n.api_key == request.api_key and not n.gone), None
        )
        if node is None:
            raise ConnectError(Code.UNAUTHENTICATED, "invalid api key")
        if node.pubkey != request.identity_pubkey:
            raise ConnectError(Code.UNAUTHENTICATED, "identity_pubkey mismatch")
        challenge = secrets.token_bytes(32)
        expires = self._now() + datetime.timedelta(seconds=30)
        self.challenges = {c: v for c, v in self.challenges.items() if v[0] != node.node_id}
        self.challenges[challenge] = (node.node_id, expires)
        return m.BeginAuthHandshakeResponse(challenge=challenge, expires_at=expires)

    def _complete(self, _headers: dict[str, str], body: bytes) -> m.CompleteAuthHandshakeResponse:
        request = codec.decode(body, COMPLETE_AUTH_HANDSHAKE.request_type)
        entry = self.challenges.pop(request.challenge, None)
        if entry is None or entry[1] < self._now():
            raise ConnectError(Code.UNAUTHENTICATED, "challenge expired or not found")
        node = self.nodes[entry[0]]
        try:
            nacl.signing.VerifyKey(node.pubkey).verify(
                auth_message(request.challenge), request.signature
            )
        except nacl.exceptions.BadSignatureError as exc:
            raise ConnectError(Code.UNAUTHENTICATED, "signature verification failed") from exc
        self.sessions = {t: v for t, v in self.sessions.items() if v[0] != node.node_id}
        token = secrets.token_urlsafe(32)
        expires = self._now() + self.session_ttl
        self.sessions[token] = (node.node_id, expires)
        self.issued_tokens.append(token)
        return m.CompleteAuthHandshakeResponse(session_token=token, expires_at=expires)

    def _heartbeat(self, headers: dict[str, str], body: bytes) -> m.UploadHeartbeatResponse:
        authorization = headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ")
        entry = self.sessions.get(token) if authorization.startswith("Bearer ") else None
        if entry is None or entry[1] <= self._now():
            raise ConnectError(Code.UNAUTHENTICATED, "invalid session")
        request = codec.decode(body, UPLOAD_HEARTBEAT.request_type)
        if self.nodes[entry[0]].gone:
            raise ConnectError(Code.NOT_FOUND, "fleet node not found")
        self.heartbeats.append((self.monotonic(), request))
        self.heartbeat_received.set()
        return m.UploadHeartbeatResponse(
            received_at=self._now(), heartbeat_interval_seconds=m.Int32(self.interval_seconds)
        )


def error_response(
    code: Code, message: str = "", retry_after: str | None = None, status: int | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return httpx.Response(
        status or code.http_status, content=ConnectError(code, message).to_json(), headers=headers
    )
