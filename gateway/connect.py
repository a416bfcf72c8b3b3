"""The Connect unary adapter: the one place where HTTP requests become messages and
errors become Connect responses (SPEC 2).

Every call passes the same checks in the same order: method (405), content type
(415), body size (64 KiB, after gzip decompression too; one gzip layer at most),
authentication (401/403; before a credential is looked up, the client's
failed-authentication limit, see ``gateway.admission``), rate limit (429), then
validation of headers and body (400). Domain errors map to
Connect codes in :func:`connect_error_for` and nowhere else; any other exception
becomes ``internal`` with a generic message, logged once with its traceback.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
import time
import zlib
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
from aiohttp import web

from fleetwire import codec
from fleetwire.codes import Code, ConnectError
from gateway import errors
from gateway.admission import Admission
from gateway.client_address import ClientAddress, Network, client_address
from gateway.metrics import Metrics
from gateway.principals import AdminPrincipal, NodePrincipal
from gateway.ratelimit import client_key
from gateway.rpcs import AuthKind, Limit, Principal, Rpc

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# A body (64 KiB at most) that takes longer than this is a slow client holding a handler
# and a connection, not a network: aiohttp has no body read timeout of its own.
BODY_READ_TIMEOUT_SECONDS = 30.0
# Below this a gzip header and CPU cost more than they save.
COMPRESS_MIN_BYTES = 1024
JSON = "application/json"


class Authenticator(Protocol):
    """How the adapter learns who calls (``gateway.auth.Auth`` is one)."""

    def cached_session(self, token: str) -> NodePrincipal | None: ...

    async def resolve_session(self, token: str) -> NodePrincipal: ...

    async def resolve_admin_token(self, token: str) -> AdminPrincipal: ...


_CODES: tuple[tuple[type[errors.DomainError], Code], ...] = (
    (errors.InvalidArgument, Code.INVALID_ARGUMENT),
    (errors.Unauthenticated, Code.UNAUTHENTICATED),
    (errors.PermissionDenied, Code.PERMISSION_DENIED),
    (errors.NotFound, Code.NOT_FOUND),
    (errors.FailedPrecondition, Code.FAILED_PRECONDITION),
    (errors.RateLimited, Code.RESOURCE_EXHAUSTED),
    (errors.Unimplemented, Code.UNIMPLEMENTED),
    (errors.Unavailable, Code.UNAVAILABLE),
)


def connect_error_for(exc: Exception, procedure: str) -> ConnectError:
    """The Connect error for ``exc``. Call it inside the ``except`` block: unexpected
    exceptions are logged here, once, with their traceback."""
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, codec.DecodeError):
        return ConnectError(Code.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, errors.DomainError):
        for cls, code in _CODES:
            if isinstance(exc, cls):
                return ConnectError(code, exc.message, exc.retry_after_seconds)
    if isinstance(exc, ConnectionResetError):  # the client left; nothing to log or answer
        return ConnectError(Code.CANCELED, "client disconnected")
    logger.exception("internal error", extra={"procedure": procedure})
    return ConnectError(Code.INTERNAL, "internal error")


def error_response(error: ConnectError, *, status: int | None = None) -> web.Response:
    headers = {}
    if error.retry_after_seconds is not None or error.code is Code.UNAVAILABLE:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_seconds or 1)))
    return web.Response(
        status=status or error.code.http_status,
        body=error.to_json(),
        content_type=JSON,
        headers=headers,
    )


def _too_big() -> ConnectError:
    return ConnectError(
        Code.RESOURCE_EXHAUSTED, f"request body is larger than {MAX_BODY_BYTES // 1024} KiB"
    )


def _is_json(request: web.BaseRequest) -> bool:
    if request.content_type != JSON:
        return False
    charset = request.charset
    return charset is None or charset.lower() in ("utf-8", "utf8")


@attrs.frozen
class _Body:
    """A request body within the size limit; ``problem`` is reported at validation."""

    data: bytes
    problem: str | None = None


async def _read_body(request: web.BaseRequest) -> _Body:
    encodings = [
        part.strip().lower()
        for value in request.headers.getall("Content-Encoding", ())
        for part in value.split(",")
        if part.strip()
    ]
    if any(encoding not in ("identity", "gzip") for encoding in encodings):
        raise ConnectError(Code.UNIMPLEMENTED, "unsupported Content-Encoding: use gzip or none")
    # Each layer would be inflated in turn, before authentication: 2,500 nested layers in
    # a 64 KiB body cost 80 times a normal call. No client sends more than one.
    if encodings.count("gzip") > 1:
        raise ConnectError(Code.UNIMPLEMENTED, "at most one gzip Content-Encoding is accepted")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_big()
    chunks: list[bytes] = []
    total = 0
    try:
        while chunk := await request.content.readany():
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise _too_big()
            chunks.append(chunk)
    except web.RequestPayloadError:  # e.g. broken chunked encoding
        return _Body(b"", "request body could not be read")
    data = b"".join(chunks)
    if "gzip" in encodings:
        data_or_problem = _gunzip(data)
        if isinstance(data_or_problem, str):
            return _Body(b"", data_or_problem)
        data = data_or_problem
    return _Body(data)


def _gunzip(data: bytes) -> bytes | str:
    """Decompress at most MAX_BODY_BYTES (no zip bombs); a str says what is wrong."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, MAX_BODY_BYTES + 1)
    except zlib.error:
        return "request body is not valid gzip"
    if len(out) > MAX_BODY_BYTES or decompressor.unconsumed_tail:
        raise _too_big()
    if not decompressor.eof or decompressor.unused_data:
        return "request body is not valid gzip"
    return out


def _bearer_token(request: web.BaseRequest) -> str:
    values = request.headers.getall("Authorization", ())
    if len(values) > 1:
        raise errors.Unauthenticated("more than one Authorization header")
    if not values:
        raise errors.Unauthenticated("missing Authorization: Bearer token")
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthenticated("Authorization must be: Bearer <token>")
    return token


def _timeout_seconds(request: web.BaseRequest) -> tuple[float | None, str | None]:
    """The Connect-Timeout-Ms deadline, or a problem to report at validation."""
    version = request.headers.get("Connect-Protocol-Version")
    if version is not None and version.strip() != "1":
        return None, "Connect-Protocol-Version must be 1"
    text = request.headers.get("Connect-Timeout-Ms")
    if text is None:
        return None, None
    text = text.strip()
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 10 and int(text) > 0):
        return None, "Connect-Timeout-Ms must be a positive integer of at most 10 digits"
    return int(text) / 1000, None


def _accepts_gzip(header: str | None) -> bool:
    for item in (header or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        name, _, value = params.strip().partition("=")
        if name.strip().lower() != "q":
            return True
        try:
            return float(value) > 0
        except ValueError:
            return False
    return False


def success_response(request: web.BaseRequest, message: Any) -> web.Response:
    body = codec.encode(message)
    headers = {"Vary": "Accept-Encoding"}
    if len(body) >= COMPRESS_MIN_BYTES and _accepts_gzip(request.headers.get("Accept-Encoding")):
        body = gzip.compress(body, compresslevel=6, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return web.Response(status=200, body=body, content_type=JSON, headers=headers)


def unknown_procedure() -> web.Response:
    """Any path that is not a procedure: HTTP 404 with code ``unimplemented`` (Connect's
    own mapping of 404), not 501, so a client can tell a wrong path from a stub."""
    return error_response(ConnectError(Code.UNIMPLEMENTED, "unknown procedure"), status=404)


@attrs.frozen
class ConnectEndpoint:
    """Every procedure of the gateway behind one handler (built once the services run)."""

    rpcs: Mapping[str, Rpc[Any, Any]]  # by path
    authenticator: Authenticator
    admission: Admission
    metrics: Metrics
    trusted_proxies: tuple[Network, ...]

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one Connect unary call (or 404 for an unknown path)."""
        rpc = self.rpcs.get(request.path)
        if rpc is None:
            return unknown_procedure()
        if request.method != "POST":
            return web.Response(status=405, text="use POST\n", headers={"Allow": "POST"})
        if not _is_json(request):
            return web.Response(
                status=415, text=f"use Content-Type: {JSON}\n", headers={"Accept-Post": JSON}
            )
        started = time.perf_counter()
        client = client_address(request, self.trusted_proxies)
        timeout, header_problem = _timeout_seconds(request)
        deadline = asyncio.timeout(timeout)
        try:
            try:
                async with deadline:
                    message = await self._serve(request, rpc, client, header_problem)
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise ConnectError(Code.DEADLINE_EXCEEDED, "deadline exceeded") from None
            response = success_response(request, message)
            code = "ok"
        except Exception as exc:  # noqa: BLE001 - the boundary: everything becomes a Connect error
            error = connect_error_for(exc, rpc.name)
            response = error_response(error)
            code = error.code.value
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(procedure=rpc.name, code=code).inc()
        self.metrics.request_latency.labels(procedure=rpc.name).observe(elapsed)
        # A healthy fleet's heartbeats would drown everything else at info.
        quiet = code == "ok" and rpc.limit is Limit.HEARTBEAT
        logger.log(
            logging.DEBUG if quiet else logging.INFO,
            "rpc",
            extra={
                "procedure": rpc.name,
                "code": code,
                "client": client.address,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        return response

    async def _serve(
        self,
        request: web.BaseRequest,
        rpc: Rpc[Any, Any],
        client: ClientAddress,
        header_problem: str | None,
    ) -> object:
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_SECONDS):
                body = await _read_body(request)
        except TimeoutError:
            raise ConnectError(
                Code.DEADLINE_EXCEEDED, "request body not received in time"
            ) from None
        key = client_key(client.address)
        principal = await self._authenticate(request, rpc, key)
        rpc.authorize(principal)
        if rpc.invoke is None:
            raise errors.Unimplemented(f"{rpc.procedure.method} is not implemented")
        if rpc.credential_in_body:
            self.admission.before_credential_lookup(key)
        self.admission.check_limit(rpc, key, principal)
        problem = header_problem or body.problem
        if problem:
            raise errors.InvalidArgument(problem)
        message = codec.decode(body.data, rpc.procedure.request_type)
        try:
            return await rpc.invoke(principal, message)
        except errors.Unauthenticated:
            if rpc.credential_in_body:
                self.admission.credential_refused(key)
            raise

    async def _authenticate(
        self, request: web.BaseRequest, rpc: Rpc[Any, Any], client: str
    ) -> Principal:
        if rpc.auth is AuthKind.NONE:
            return None
        try:
            token = _bearer_token(request)
        except errors.Unauthenticated:
            self.metrics.auth_failures.labels(reason="authorization_header").inc()
            raise
        if rpc.auth is AuthKind.NODE:
            cached = self.authenticator.cached_session(token)
            if cached is not None:
                return cached
        self.admission.before_credential_lookup(client)
        try:
            if rpc.auth is AuthKind.NODE:
                return await self.authenticator.resolve_session(token)
            return await self.authenticator.resolve_admin_token(token)
        except errors.Unauthenticated:
            self.admission.credential_refused(client)
            raise
