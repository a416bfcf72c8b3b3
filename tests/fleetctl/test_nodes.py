"""`fleetctl nodes`, `confirm`, `revoke` and `summary` against a scripted admin API."""

from __future__ import annotations

import json

import pytest

from fleetwire import codec
from fleetwire import messages as m
from tests.fleetctl.scripted import API_KEY, ScriptedAdmin, at, fleetctl, node

ONLINE = m.Connectivity.CONNECTIVITY_ONLINE
STOPPED = m.Connectivity.CONNECTIVITY_STOPPED


def test_nodes_json_follows_every_page(capsys: pytest.CaptureFixture[str]) -> None:
    """`nodes --json` follows nextPageToken to the end and prints every node once, in the
    API's JSON form."""
    nodes = [node(i) for i in range(5, 0, -1)]
    admin = ScriptedAdmin(nodes=nodes)
    assert fleetctl(["nodes", "--json"], admin) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == codec.to_dict(m.ListFleetNodesResponse(tuple(nodes)))
    assert [item["fleetNodeId"] for item in printed["fleetNodes"]] == ["5", "4", "3", "2", "1"]
    assert [r.page_token for r in admin.requests("ListFleetNodes")] == ["", "2", "4"]
    assert {r.page_size for r in admin.requests("ListFleetNodes")} == {m.MAX_PAGE_SIZE}


def test_nodes_json_of_an_empty_fleet_still_has_the_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With no node, `nodes --json` prints an empty fleetNodes list, not an empty object."""
    assert fleetctl(["nodes", "--json"], ScriptedAdmin()) == 0
    assert json.loads(capsys.readouterr().out) == {"fleetNodes": []}


def test_nodes_table_shows_age_connectivity_and_skew(capsys: pytest.CaptureFixture[str]) -> None:
    """The table shows last seen as an age, connectivity in words and the clock skew."""
    seen = node(7, last_seen_at=at(-12), connectivity=ONLINE, clock_skew_ms=m.Int64(-1500))
    never = node(8, connectivity=m.Connectivity.CONNECTIVITY_NEVER_SEEN)
    stopped = node(9, last_seen_at=at(-300), connectivity=STOPPED, clock_skew_ms=m.Int64(0))
    assert fleetctl(["nodes"], ScriptedAdmin(nodes=[never, seen, stopped])) == 0
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
    assert lines[1].split() == [
        *("8", "node-8", "CONFIRMED", "00112233aabbccdd", "never", "NEVER", "SEEN", "-")
    ]
    assert lines[2].split()[4:] == ["12s", "ago", "ONLINE", "-1.5s"]
    assert lines[3].split()[4:] == ["5m", "ago", "STOPPED", "+0.0s"]
    assert len(lines) == 4


def test_nodes_wide_adds_agent_version_hostname_and_os(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--wide adds the facts a node reported, and "-" for a node that reported none."""
    facts = m.NodeFacts(agent_version="0.2.0", hostname="rack4-n7", os="Linux 6.1.0 x86_64")
    partial = m.NodeFacts(agent_version="0.1.9")
    nodes = [node(3, facts=facts), node(2, facts=partial), node(1)]
    assert fleetctl(["nodes", "--wide"], ScriptedAdmin(nodes=nodes)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("AGENT VERSION  HOSTNAME  OS")
    assert lines[1].split()[-6:] == ["-", "0.2.0", "rack4-n7", "Linux", "6.1.0", "x86_64"]
    assert lines[2].split()[-4:] == ["-", "0.1.9", "-", "-"]
    assert lines[3].split()[-4:] == ["-", "-", "-", "-"]


def test_nodes_without_wide_leave_the_facts_out(capsys: pytest.CaptureFixture[str]) -> None:
    """The default table has no facts columns."""
    facts = m.NodeFacts(agent_version="0.2.0", hostname="rack4-n7", os="Linux")
    assert fleetctl(["nodes"], ScriptedAdmin(nodes=[node(1, facts=facts)])) == 0
    out = capsys.readouterr().out
    assert "HOSTNAME" not in out and "rack4-n7" not in out


@pytest.mark.parametrize(
    ("flag", "wire"),
    [
        ("online", "CONNECTIVITY_ONLINE"),
        ("offline", "CONNECTIVITY_OFFLINE"),
        ("never-seen", "CONNECTIVITY_NEVER_SEEN"),
        ("stopped", "CONNECTIVITY_STOPPED"),
    ],
)
def test_connectivity_filter_is_sent_on_every_page(flag: str, wire: str) -> None:
    """--connectivity becomes the request's connectivity filter on every page."""
    admin = ScriptedAdmin(nodes=[node(i, connectivity=m.Connectivity[wire]) for i in range(3)])
    assert fleetctl(["nodes", "--connectivity", flag], admin) == 0
    requests = admin.requests("ListFleetNodes")
    assert len(requests) == 2
    assert {r.connectivity.name for r in requests} == {wire}


def test_table_escapes_characters_that_could_spoof_a_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A name with a right-to-left override or a line separator is shown escaped, on one row."""
    spoof = node(9, name="evil\u202edcba\u2028x")
    assert fleetctl(["nodes"], ScriptedAdmin(nodes=[spoof])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "evil\\u202edcba\\u2028x" in lines[1]


def test_confirm_prints_the_api_key_alone_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """`confirm ID` sends the id and prints only the api key on stdout."""
    admin = ScriptedAdmin(nodes=[node(42)])
    assert fleetctl(["confirm", "42"], admin) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{API_KEY}\n"
    assert "shown once" in captured.err
    assert admin.requests("ConfirmFleetNode") == [m.ConfirmFleetNodeRequest(m.Int64(42))]


def test_revoke_prints_a_confirmation(capsys: pytest.CaptureFixture[str]) -> None:
    """`revoke ID` revokes that node and says so in one line."""
    admin = ScriptedAdmin(nodes=[node(42)])
    assert fleetctl(["revoke", "42"], admin) == 0
    assert capsys.readouterr().out == "revoked fleet_node_id=42\n"
    assert admin.nodes == []


def test_revoke_of_an_unknown_node_is_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    """A Connect error prints its code and message and exits 1."""
    assert fleetctl(["revoke", "42"], ScriptedAdmin()) == 1
    assert capsys.readouterr().err == "fleetctl: not_found: fleet node not found\n"


SUMMARY = m.GetFleetSummaryResponse(
    awaiting_confirmation=m.Int64(3),
    online=m.Int64(38),
    offline=m.Int64(2),
    never_seen=m.Int64(1),
    stopped=m.Int64(0),
    recently_offline=(
        node(17, name="edge-a", last_seen_at=at(-240)),
        node(12, name="edge-b", last_seen_at=at(-3000)),
    ),
)


def test_summary_prints_counts_then_recently_offline_nodes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`summary` prints confirmed nodes by connectivity, those awaiting confirmation, then
    the nodes that went offline in the last hour with their last-seen age."""
    assert fleetctl(["summary"], ScriptedAdmin(summary=SUMMARY)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "confirmed nodes        41",
        "  online               38",
        "  offline               2",
        "  never seen            1",
        "  stopped               0",
        "awaiting confirmation   3",
        "",
        "offline in the last hour: 2",
        "ID  NAME    LAST SEEN",
        "17  edge-a  4m ago",
        "12  edge-b  50m ago",
    ]


def test_summary_without_recent_offline_nodes_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With nothing offline recently, the summary says so instead of an empty table."""
    quiet = m.GetFleetSummaryResponse(
        awaiting_confirmation=m.Int64(0),
        online=m.Int64(5),
        offline=m.Int64(0),
        never_seen=m.Int64(0),
        stopped=m.Int64(0),
    )
    assert fleetctl(["summary"], ScriptedAdmin(summary=quiet)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "confirmed nodes        5"
    assert out[-1] == "no node went offline in the last hour"


def test_summary_json_is_the_api_json_form(capsys: pytest.CaptureFixture[str]) -> None:
    """`summary --json` prints GetFleetSummaryResponse as the API writes it (int64 as strings)."""
    assert fleetctl(["summary", "--json"], ScriptedAdmin(summary=SUMMARY)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == codec.to_dict(SUMMARY)
    assert printed["online"] == "38" and printed["stopped"] == "0"
    assert [n["fleetNodeId"] for n in printed["recentlyOffline"]] == ["17", "12"]
