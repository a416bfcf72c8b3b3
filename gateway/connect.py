"""The Connect unary adapter: the one place where HTTP requests become messages and
errors become Connect responses (SPEC 2).

Every call passes the same checks in the same order: method (405), content type
(415), body size (64 KiB, after gzip decompression too; one gzip layer at most),
authentication (401/403; before a credential is looked up, the client's
failed-authentication limit, see ``gateway.admission``), rate limit (429), then
validation of headers and body (400). Domain errors map to
Connect codes in :func:`connect_error_for` and nowhere else; any other exception
becomes ``internal`` with a generic message, logged once with its traceback.

Everything a procedure's calls share is worked out once, when the endpoint is built
(``_Route``): its name, its codec functions, its metric children. A heartbeat is this
gateway's most frequent request by far, and each per-call lookup shows in its cost
(bench/README.md).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import Counter, Histogram

from fleetwire import codec
from fleetwire.codes import Code, ConnectError
from gateway import errors
from gateway.admission import Admission
from gateway.client_address import Network, client_address
from gateway.connect_request import JSON, bearer_token, is_json, read_body, timeout_seconds
from gateway.connect_request import accepts_gzip as _accepts_gzip
from gateway.metrics import Bound, Metrics
from gateway.principals import AdminPrincipal, NodePrincipal
from gateway.ratelimit import client_key
from gateway.rpcs import AuthKind, Limit, Principal, Rpc

logger = logging.getLogger(__name__)

# Below this a gzip header and CPU cost more than they save.
COMPRESS_MIN_BYTES = 1024


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


class _Route:
    """One procedure as the endpoint serves it: what its every call shares."""

    __slots__ = ("_outcomes", "_requests", "latency", "name", "quiet_when_ok", "rpc")

    def __init__(self, rpc: Rpc[Any, Any], metrics: Metrics) -> None:
        self.rpc = rpc
        self.name = rpc.name
        self._requests = metrics.requests
        self._outcomes: dict[str, Bound[Counter]] = {}
        self.latency: Bound[Histogram] = Bound(metrics.request_latency, procedure=self.name)
        # A healthy fleet's heartbeats would drown everything else at info.
        self.quiet_when_ok = rpc.limit is Limit.HEARTBEAT

    def answered(self, code: str) -> Counter:
        outcome = self._outcomes.get(code)
        if outcome is None:
            outcome = self._outcomes[code] = Bound(self._requests, procedure=self.name, code=code)
        return outcome()


class ConnectEndpoint:
    """Every procedure of the gateway behind one handler (built once the services run)."""

    def __init__(
        self,
        rpcs: Mapping[str, Rpc[Any, Any]],  # by path
        authenticator: Authenticator,
        admission: Admission,
        metrics: Metrics,
        trusted_proxies: tuple[Network, ...],
    ) -> None:
        self._routes = {path: _Route(rpc, metrics) for path, rpc in rpcs.items()}
        self.authenticator = authenticator
        self.admission = admission
        self.metrics = metrics
        self.trusted_proxies = trusted_proxies

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one Connect unary call (or 404 for an unknown path)."""
        route = self._routes.get(request.path)
        if route is None:
            return unknown_procedure()
        if request.method != "POST":
            return web.Response(status=405, text="use POST\n", headers={"Allow": "POST"})
        if not is_json(request):
            return web.Response(
                status=415, text=f"use Content-Type: {JSON}\n", headers={"Accept-Post": JSON}
            )
        started = time.perf_counter()
        timeout, header_problem = timeout_seconds(request)
        try:
            if timeout is None:  # nothing to bound: no timer to arm and cancel
                message = await self._serve(request, route.rpc, header_problem)
            else:
                deadline = asyncio.timeout(timeout)
                try:
                    async with deadline:
                        message = await self._serve(request, route.rpc, header_problem)
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    raise ConnectError(Code.DEADLINE_EXCEEDED, "deadline exceeded") from None
            response = success_response(request, message)
            code = "ok"
        except Exception as exc:  # noqa: BLE001 - the boundary: everything becomes a Connect error
            error = connect_error_for(exc, route.name)
            response = error_response(error)
            code = error.code.value
        elapsed = time.perf_counter() - started
        route.answered(code).inc()
        route.latency().observe(elapsed)
        level = logging.DEBUG if code == "ok" and route.quiet_when_ok else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "rpc",
                extra={
                    "procedure": route.name,
                    "code": code,
                    "client": client_address(request, self.trusted_proxies).address,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )
        return response

    def _client_key(self, request: web.BaseRequest) -> str:
        return _key_of(client_address(request, self.trusted_proxies).address)

    async def _serve(
        self, request: web.BaseRequest, rpc: Rpc[Any, Any], header_problem: str | None
    ) -> object:
        body = await read_body(request)
        key = self._client_key(request)
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
            token = bearer_token(request)
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


# The clients of a gateway are few addresses (its nginx, a fleet's NAT) asking often.
_key_of = functools.lru_cache(maxsize=4096)(client_key)
