"""A synchronous Connect client of ``FleetNodeAdminService`` over one injected httpx.Client.

Headers, error bodies and ``Retry-After`` are read by ``fleetwire.connect_client``, as in
the agent. Every transport failure is mapped here, once, to :class:`Unreachable`; every
Connect error answer is a :class:`fleetwire.codes.ConnectError`.
"""

from __future__ import annotations

from typing import TypeVar

import httpx

from fleetctl.errors import Unreachable
from fleetwire import codec, connect_client
from fleetwire.procedures import Procedure

Req = TypeVar("Req")
Resp = TypeVar("Resp")

REQUEST_TIMEOUT_SECONDS = 30.0


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
