"""The gateway client: Connect unary JSON calls over one injected ``httpx.AsyncClient``.

The only module that sees httpx exceptions and HTTP statuses; each becomes one of the
errors of :mod:`agent.errors` here, once.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import httpx
import trio

from agent.errors import ConfigurationError, ProtocolError, Rejected, TlsFailure, Transient
from fleetwire import codec
from fleetwire.codes import Code
from fleetwire.connect_client import error_from_response, is_redirect, request_headers
from fleetwire.procedures import Procedure

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 30.0
# Connect codes that mean "try again later" whatever HTTP status carried them.
_TRANSIENT_CODES = frozenset({Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED})

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Bearer = Callable[[], str | None]


def _no_bearer() -> str | None:
    return None


class GatewayClient:
    """Calls the gateway at ``base_url``; ``bearer`` is read per request, so a refresh
    takes effect at once."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, bearer: Bearer = _no_bearer):
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._bearer = bearer

    async def call(self, procedure: Procedure[Req, Resp], request: Req) -> Resp:
        """One unary call, bounded by the whole-request timeout."""
        headers = request_headers(self._bearer(), timeout_seconds=REQUEST_TIMEOUT_SECONDS)
        try:
            with trio.fail_after(REQUEST_TIMEOUT_SECONDS):
                response = await self._http.post(
                    self._base_url + procedure.path, content=codec.encode(request), headers=headers
                )
        except trio.TooSlowError as exc:
            raise Transient(
                f"{procedure.method}: no answer within {REQUEST_TIMEOUT_SECONDS:.0f} s"
            ) from exc
        except httpx.TransportError as exc:
            reason = f"{procedure.method}: {_describe_transport_error(exc)}"
            if _tls_failure(exc):
                raise TlsFailure(reason) from exc
            raise Transient(reason) from exc
        return _read_response(procedure, response)


def _tls_failure(exc: BaseException) -> bool:
    """Whether an ``ssl`` error (e.g. certificate verification) lies under ``exc``."""
    cause: BaseException | None = exc
    for _ in range(16):  # a bounded walk: exception chains can loop
        if cause is None:
            return False
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _describe_transport_error(exc: httpx.TransportError) -> str:
    """The first cause with a text (e.g. the TLS verification failure under a ConnectError).

    These texts name hosts, ports and TLS problems, never headers or bodies: no secret."""
    cause: BaseException | None = exc
    while cause is not None and not str(cause):
        cause = cause.__cause__ or cause.__context__
    detail = str(cause) if cause is not None else type(exc).__name__
    return f"cannot reach the gateway ({type(exc).__name__}: {detail})"


def _read_response(procedure: Procedure[Req, Resp], response: httpx.Response) -> Resp:
    status = response.status_code
    method = procedure.method
    if status == 200:
        try:
            return codec.decode(response.content, procedure.response_type)
        except codec.DecodeError as exc:
            raise ProtocolError(f"{method}: unexpected answer from the gateway: {exc}") from exc
    if is_redirect(status):  # never followed (follow_redirects=False)
        raise Transient(f"{method}: the gateway answered with a redirect (HTTP {status})")
    error = error_from_response(status, response.content, response.headers)
    if status >= 500 or status == 429 or error.code in _TRANSIENT_CODES:
        raise Transient(f"{method}: {error} (HTTP {status})", error.retry_after_seconds)
    raise Rejected(method, error.code, error.message)


def ssl_verify(ca_file: str | None) -> ssl.SSLContext | bool:
    """What httpx verifies the server against: its default store (certifi's bundle, never
    one the environment names), or the operator's CA file alone."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot use CA file {ca_file}: {exc}") from exc


@contextlib.asynccontextmanager
async def open_gateway_client(
    base_url: str,
    *,
    verify: ssl.SSLContext | bool = True,
    bearer: Bearer = _no_bearer,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[GatewayClient]:
    """A client for one gateway; ``verify`` comes from :func:`ssl_verify`;
    ``transport`` is the test seam (``httpx.MockTransport``)."""
    # httpx's own timeouts are off: the 30 s whole-request deadline is the caller's fail_after.
    # trust_env=False: no proxy, CA or .netrc from the environment (SPEC 5.8); a proxy would
    # see the secrets, SSL_CERT_FILE/SSL_CERT_DIR would silently replace the trust store.
    async with httpx.AsyncClient(
        verify=verify,
        follow_redirects=False,
        transport=transport,
        timeout=None,  # noqa: S113
        trust_env=False,
    ) as http:
        yield GatewayClient(http, base_url, bearer)
