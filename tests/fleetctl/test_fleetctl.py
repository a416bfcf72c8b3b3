"""fleetctl against a scripted admin API (its HTTP seam); the real gateway is exercised in e2e."""

from __future__ import annotations

import datetime
import json

import httpx
import pytest

from fleetctl.__main__ import run
from fleetwire import codec
from fleetwire import messages as m

TOKEN = "fleetadm_0123abcd_" + "A" * 43
ENV = {"FLEET_ADMIN_TOKEN": TOKEN, "FLEET_SERVER_URL": "https://gw.test"}
NOW = datetime.datetime.now(datetime.UTC)


def node(node_id: int, **fields: object) -> m.FleetNodeSummary:
    return m.FleetNodeSummary(
        fleet_node_id=m.Int64(node_id),
        name=f"node-{node_id}",
        enrollment_status=m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED,
        identity_fingerprint="00112233aabbccdd",
        created_at=NOW,
        **fields,  # type: ignore[arg-type]
    )


class ScriptedAdmin:
    """Answers ListFleetNodes in pages of two and records every request."""

    def __init__(self, nodes: list[m.FleetNodeSummary]) -> None:
        self.nodes = nodes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return httpx.Response(
                401, json={"code": "unauthenticated", "message": "invalid admin token"}
            )
        if request.url.path.endswith("/ListFleetNodes"):
            listing = codec.decode(request.content, m.ListFleetNodesRequest)
            start = int(listing.page_token or 0)
            page = self.nodes[start : start + 2]
            more = start + 2 < len(self.nodes)
            body = m.ListFleetNodesResponse(tuple(page), str(start + 2) if more else "")
            return httpx.Response(200, content=codec.encode(body))
        if request.url.path.endswith("/RevokeFleetNode"):
            return httpx.Response(
                404, json={"code": "not_found", "message": "fleet node not found"}
            )
        return httpx.Response(404, json={"code": "unimplemented"})


def test_nodes_json_follows_every_page(capsys: pytest.CaptureFixture[str]) -> None:
    """`nodes --json` follows nextPageToken to the end and prints every node once."""
    admin = ScriptedAdmin([node(i) for i in range(5, 0, -1)])
    assert run(["nodes", "--json"], ENV, httpx.MockTransport(admin)) == 0
    listed = json.loads(capsys.readouterr().out)["fleetNodes"]
    assert [item["fleetNodeId"] for item in listed] == ["5", "4", "3", "2", "1"]
    assert len(admin.requests) == 3


def test_nodes_table_shows_age_connectivity_and_skew(capsys: pytest.CaptureFixture[str]) -> None:
    """The table shows last seen as an age, connectivity in words and the clock skew."""
    seen = node(
        7,
        last_seen_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=12),
        connectivity=m.Connectivity.CONNECTIVITY_ONLINE,
        clock_skew_ms=m.Int64(-1500),
    )
    never = node(8, connectivity=m.Connectivity.CONNECTIVITY_NEVER_SEEN)
    assert run(["nodes"], ENV, httpx.MockTransport(ScriptedAdmin([never, seen]))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "STATUS",
        "FINGERPRINT",
        "LAST",
        "SEEN",
        "CONNECTIVITY",
        "SKEW",
    ]
    assert "NEVER SEEN" in lines[1] and "never" in lines[1]
    assert "ONLINE" in lines[2] and "-1.5s" in lines[2]
    # 12 s old when listed; a slow machine may take a few seconds more to print it.
    assert any(f"{age}s ago" in lines[2] for age in range(12, 20))


def test_connect_error_is_printed_with_its_code(capsys: pytest.CaptureFixture[str]) -> None:
    """A Connect error prints its code and message and exits non-zero."""
    assert run(["revoke", "42"], ENV, httpx.MockTransport(ScriptedAdmin([]))) == 1
    assert capsys.readouterr().err.strip() == "fleetctl: not_found: fleet node not found"


def test_rejected_token_exits_77(capsys: pytest.CaptureFixture[str]) -> None:
    """An admin token the gateway rejects exits 77 and says unauthenticated."""
    env = {**ENV, "FLEET_ADMIN_TOKEN": "fleetadm_bad"}
    assert run(["nodes"], env, httpx.MockTransport(ScriptedAdmin([]))) == 77
    assert "unauthenticated" in capsys.readouterr().err


def test_missing_token_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Without FLEET_ADMIN_TOKEN nothing is sent and the message says what to export."""
    admin = ScriptedAdmin([])
    assert run(["nodes"], {}, httpx.MockTransport(admin)) == 78
    assert "FLEET_ADMIN_TOKEN" in capsys.readouterr().err
    assert admin.requests == []


def test_unreachable_gateway_exits_69(capsys: pytest.CaptureFixture[str]) -> None:
    """A connection failure exits 69 and names the server, without a traceback."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert run(["nodes"], ENV, httpx.MockTransport(refuse)) == 69
    err = capsys.readouterr().err
    assert "cannot reach https://gw.test" in err and "Traceback" not in err


def test_bad_ttl_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unparseable --ttl exits 2 before any request."""
    admin = ScriptedAdmin([])
    assert run(["create-code", "--ttl", "soon"], ENV, httpx.MockTransport(admin)) == 2
    assert admin.requests == []


def test_table_escapes_characters_that_could_spoof_a_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A name with a right-to-left override or a line separator is shown escaped, on one row."""
    spoof = m.FleetNodeSummary(fleet_node_id=m.Int64(9), name="evil\u202edcba\u2028x")
    assert run(["nodes"], ENV, httpx.MockTransport(ScriptedAdmin([spoof]))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "evil\\u202edcba\\u2028x" in lines[1]
