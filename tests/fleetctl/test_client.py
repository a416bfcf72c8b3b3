"""fleetctl's admin client reads answers as the agent does (fleetwire.connect_client)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from fleetctl.client import AdminClient
from fleetctl.errors import Unreachable
from fleetwire import messages as m
from fleetwire import procedures as p
from fleetwire.codes import Code, ConnectError

TOKEN = "fleetadm_0123abcd_" + "A" * 43


@contextlib.contextmanager
def client_answering(response: httpx.Response, seen: list[httpx.Request]) -> Iterator[AdminClient]:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        yield AdminClient(http, "https://gw.test", TOKEN)


def test_fractional_retry_after_is_read_like_the_agent_reads_it() -> None:
    """A 429 with ``Retry-After: 1.5`` becomes resource_exhausted retrying after 1.5 s."""
    answer = httpx.Response(
        429,
        headers={"Retry-After": "1.5"},
        json={"code": "resource_exhausted", "message": "slow down"},
    )
    with client_answering(answer, []) as client, pytest.raises(ConnectError) as raised:
        client.call(p.GET_FLEET_SUMMARY, m.Empty())
    assert raised.value.code is Code.RESOURCE_EXHAUSTED
    assert raised.value.retry_after_seconds == 1.5


def test_calls_carry_the_connect_headers_and_the_bearer() -> None:
    """Each call is a Connect JSON POST with protocol version 1 and the admin token."""
    seen: list[httpx.Request] = []
    with client_answering(httpx.Response(200, json={}), seen) as client:
        client.call(p.GET_FLEET_SUMMARY, m.Empty())
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/fleetnodeadmin.v1.FleetNodeAdminService/GetFleetSummary"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Connect-Protocol-Version"] == "1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_any_3xx_is_a_failure_never_followed() -> None:
    """A 3xx, even one without a Location header, is refused as a redirect."""
    seen: list[httpx.Request] = []
    with (
        client_answering(httpx.Response(300, json={}), seen) as client,
        pytest.raises(Unreachable, match="redirect"),
    ):
        client.call(p.GET_FLEET_SUMMARY, m.Empty())
    assert len(seen) == 1
