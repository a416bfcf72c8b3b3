"""A synchronous Connect client of ``FleetNodeAdminService`` over one injected httpx.Client.

Headers, error bodies and ``Retry-After`` are read by ``fleetwire.connect_client``, as in
the agent. Every transport failure is mapped here, once, to :class:`Unreachable`; every
Connect error answer is a :class:`fleetwire.codes.ConnectError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

import attrs
import httpx

from fleetctl.errors import ConfigurationError, Unreachable
from fleetwire import codec, connect_client
from fleetwire.procedures import Procedure

Req = TypeVar("Req")
Resp = TypeVar("Resp")

REQUEST_TIMEOUT_SECONDS = 30.0


def open_http(ca_file: str | None, transport: httpx.BaseTransport | None) -> httpx.Client:
    """The HTTP client of one fleetctl run; ``transport`` is the test seam (None: network).

    ``trust_env=False``: connection settings never come from the environment (SPEC 5.8).
    A proxy from ``HTTP(S)_PROXY``/``ALL_PROXY`` would see the admin token, and
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` would silently replace the trust store; ``.netrc``
    is ignored too. Only ``--ca-file`` changes whom fleetctl trusts.
    """
    try:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"--ca-file {ca_file}: cannot load it ({exc})") from exc
    return httpx.Client(
        verify=verify,
        timeout=REQUEST_TIMEOUT_SECONDS,
        follow_redirects=False,
        trust_env=False,
        transport=transport,
    )


class _TokenPaged(Protocol):
    @property
    def page_token(self) -> str: ...


class _TokenPage(Protocol):
    @property
    def next_page_token(self) -> str: ...


TokenPaged = TypeVar("TokenPaged", bound=_TokenPaged)
TokenPage = TypeVar("TokenPage", bound=_TokenPage)
Item = TypeVar("Item")


def _next_by_token(request: TokenPaged, response: _TokenPage) -> TokenPaged | None:
    """Paging by ``pageToken``/``nextPageToken`` (absent on the last page)."""
    if not response.next_page_token:
        return None
    # mypy cannot bind a protocol-bound TypeVar to an attrs class; every request is one.
    return attrs.evolve(request, page_token=response.next_page_token)  # type: ignore[misc]


class AdminClient:
    def __init__(self, http: httpx.Client, server_url: str, admin_token: str) -> None:
        self._http = http
        self._base = server_url.rstrip("/")
        self._token = admin_token

    def call(self, procedure: Procedure[Req, Resp], request: Req) -> Resp:
        try:
            response = self._http.post(
                self._base + procedure.path,
                content=codec.encode(request),
                headers=connect_client.request_headers(self._token),
            )
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {self._base}: {type(exc).__name__}") from exc
        if response.status_code == 200:
            try:
                return codec.decode(response.content, procedure.response_type)
            except codec.DecodeError as exc:
                raise Unreachable(f"{self._base} answered an invalid message: {exc}") from exc
        if connect_client.is_redirect(response.status_code):
            raise Unreachable(
                f"{self._base} answered a redirect (HTTP {response.status_code}); "
                "use the final URL with --server-url"
            )
        raise connect_client.error_from_response(
            response.status_code, response.content, response.headers
        )

    def pages(
        self,
        procedure: Procedure[Req, Resp],
        request: Req,
        next_request: Callable[[Req, Resp], Req | None],
    ) -> Iterator[Resp]:
        """Every page of a list procedure, from ``request`` on; ``next_request`` names the
        following page (None: that was the last). The one paging loop of fleetctl."""
        while True:
            response = self.call(procedure, request)
            yield response
            following = next_request(request, response)
            if following is None:
                return
            if following == request:
                # A gateway that hands back the cursor it was given would keep us here forever.
                raise Unreachable(f"{self._base} answered a page that does not advance")
            request = following

    def collect(
        self,
        procedure: Procedure[TokenPaged, TokenPage],
        request: TokenPaged,
        items: Callable[[TokenPage], Iterable[Item]],
    ) -> tuple[Item, ...]:
        """Every item of a listing paged by token, in the gateway's order."""
        pages = self.pages(procedure, request, _next_by_token)
        return tuple(item for page in pages for item in items(page))
