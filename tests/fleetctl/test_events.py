"""`fleetctl events` against a scripted admin API; --follow on an injected sleep, never the
real clock."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from fleetwire import codec
from fleetwire import messages as m
from fleetwire.codes import Code
from tests.fleetctl.scripted import ScriptedAdmin, error, event, fleetctl

EVENTS = [
    event(1, 4, "REGISTERED", -600),
    event(2, 4, "CONFIRMED", -590),
    event(3, 5, "ONLINE", -300.25),
    event(4, 4, "ONLINE", -200),
    event(5, 5, "OFFLINE", -100),
]


class Sleeper:
    """Stands in for time.sleep: records each wait and, instead of waiting, runs the next
    scripted step; once the steps are used up it raises KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, *steps: Callable[[], object]) -> None:
        self.steps = list(steps)
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if not self.steps:
            raise KeyboardInterrupt
        self.steps.pop(0)()


def test_events_prints_one_line_per_event_oldest_first_across_pages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`events` pages on lastEventId until an empty page and prints `<time>  <id> node=<id>
    <KIND>` per event, oldest first."""
    admin = ScriptedAdmin(events=list(EVENTS))
    assert fleetctl(["events"], admin) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-11-27T09:50:00Z  1 node=4 REGISTERED",
        "2026-11-27T09:50:10Z  2 node=4 CONFIRMED",
        "2026-11-27T09:54:59.750000Z  3 node=5 ONLINE",
        "2026-11-27T09:56:40Z  4 node=4 ONLINE",
        "2026-11-27T09:58:20Z  5 node=5 OFFLINE",
    ]
    requests = admin.requests("ListFleetNodeEvents")
    assert [r.after_event_id for r in requests] == [0, 2, 4, 5]
    assert {r.page_size for r in requests} == {m.MAX_PAGE_SIZE}


def test_events_for_one_node_after_an_event(capsys: pytest.CaptureFixture[str]) -> None:
    """--node and --after become fleetNodeId and afterEventId of the first request."""
    admin = ScriptedAdmin(events=list(EVENTS))
    assert fleetctl(["events", "--node", "4", "--after", "1"], admin) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == ["2", "4"]
    first = admin.requests("ListFleetNodeEvents")[0]
    assert codec.to_dict(first) == {"afterEventId": "1", "fleetNodeId": "4", "pageSize": 1000}


def test_events_json_prints_one_api_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints each event as the API writes it, one JSON object per line."""
    assert fleetctl(["events", "--json"], ScriptedAdmin(events=list(EVENTS))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [codec.to_dict(e) for e in EVENTS]
    assert json.loads(lines[-1]) == {
        "eventId": "5",
        "fleetNodeId": "5",
        "kind": "FLEET_NODE_EVENT_KIND_OFFLINE",
        "occurredAt": "2026-11-27T09:58:20Z",
    }


def test_no_events_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """Past the newest event, `events` prints nothing and exits 0 after one request."""
    admin = ScriptedAdmin(events=list(EVENTS))
    assert fleetctl(["events", "--after", "5"], admin) == 0
    assert capsys.readouterr().out == ""
    assert len(admin.calls) == 1


def test_follow_polls_every_2s_prints_new_events_and_ends_quietly_on_ctrl_c(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--follow prints the backlog, then polls every 2 s from the last event shown, prints
    each new event once, and exits 0 without a traceback at Ctrl-C."""
    admin = ScriptedAdmin(events=list(EVENTS[:2]))
    sleep = Sleeper(
        lambda: None,
        lambda: admin.events.extend(EVENTS[2:4]),
        lambda: admin.events.append(EVENTS[4]),
    )
    assert fleetctl(["events", "--follow"], admin, sleep=sleep) == 0
    captured = capsys.readouterr()
    assert [line.split()[1] for line in captured.out.splitlines()] == ["1", "2", "3", "4", "5"]
    assert captured.err == ""
    assert sleep.waits == [2.0, 2.0, 2.0, 2.0]
    # Each poll pages until an empty page: the backlog (0, 2), nothing new (2), two new
    # events (2, 4), the last one (4, 5).
    afters = [r.after_event_id for r in admin.requests("ListFleetNodeEvents")]
    assert afters == [0, 2, 2, 2, 4, 4, 5]


def test_follow_json_streams_each_event_as_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    """--follow --json keeps printing one JSON object per line as events arrive."""
    admin = ScriptedAdmin(events=[EVENTS[0]])
    sleep = Sleeper(lambda: admin.events.append(EVENTS[1]))
    assert fleetctl(["events", "--follow", "--json"], admin, sleep=sleep) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["eventId"] for line in lines] == ["1", "2"]


def test_follow_rides_out_an_unavailable_or_unreachable_gateway(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """While following, unavailable answers and connection failures are reported on stderr
    and retried at the next poll (Retry-After honoured when longer), from the last event
    shown: nothing is lost or repeated."""
    admin = ScriptedAdmin(events=list(EVENTS[:2]), page_size=1)
    # The first page answers, the second fails: the next poll must resume after event 1.
    admin.fail("ListFleetNodeEvents", None, error(Code.UNAVAILABLE, "restarting", "7.5"))
    sleep = Sleeper(
        lambda: admin.fail("ListFleetNodeEvents", error(Code.RESOURCE_EXHAUSTED, "slow down")),
        lambda: admin.fail("ListFleetNodeEvents", httpx.ConnectError("connection refused")),
        lambda: admin.events.append(EVENTS[2]),
    )
    assert fleetctl(["events", "--follow"], admin, sleep=sleep) == 0
    captured = capsys.readouterr()
    assert [line.split()[1] for line in captured.out.splitlines()] == ["1", "2", "3"]
    assert captured.err.splitlines() == [
        "fleetctl: unavailable: restarting (retrying in 7s)",
        "fleetctl: resource_exhausted: slow down (retrying in 2s)",
        "fleetctl: unavailable: cannot reach https://gw.test: ConnectError (retrying in 2s)",
    ]
    assert sleep.waits == [7.5, 2.0, 2.0, 2.0]
    afters = [r.after_event_id for r in admin.requests("ListFleetNodeEvents")]
    assert afters == [0, 1, 1, 1, 1, 2, 3]


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [(Code.UNAUTHENTICATED, 77), (Code.PERMISSION_DENIED, 77), (Code.INVALID_ARGUMENT, 2)],
)
def test_follow_ends_on_an_error_that_retrying_cannot_fix(
    code: Code, exit_code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A revoked admin token or a refused request ends --follow with its exit code."""
    admin = ScriptedAdmin(events=list(EVENTS[:1]))
    sleep = Sleeper(lambda: admin.fail("ListFleetNodeEvents", error(code, "no")))
    assert fleetctl(["events", "--follow"], admin, sleep=sleep) == exit_code
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["2026-11-27T09:50:00Z  1 node=4 REGISTERED"]
    assert captured.err == f"fleetctl: {code.value}: no\n"
    assert sleep.waits == [2.0]


def test_without_follow_an_unavailable_gateway_exits_69(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --follow nothing is retried: unavailable exits 69 after the events printed."""
    admin = ScriptedAdmin(events=list(EVENTS), page_size=2)
    page = m.ListFleetNodeEventsResponse(tuple(EVENTS[:2]), m.Int64(2))
    admin.fail(
        "ListFleetNodeEvents",
        httpx.Response(200, content=codec.encode(page)),
        error(Code.UNAVAILABLE, "restarting"),
    )
    sleep = Sleeper()
    assert fleetctl(["events"], admin, sleep=sleep) == 69
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2
    assert captured.err == "fleetctl: unavailable: restarting\n"
    assert sleep.waits == []


def test_ctrl_c_without_follow_is_not_swallowed() -> None:
    """Ctrl-C during a plain `events` still interrupts (main exits 130), it is not exit 0."""
    admin = ScriptedAdmin(events=list(EVENTS))
    admin.fail("ListFleetNodeEvents", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        fleetctl(["events"], admin)


def test_ctrl_c_during_a_follow_request_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while a --follow poll is in flight (not only while sleeping) exits 0 quietly."""
    admin = ScriptedAdmin(events=list(EVENTS[:1]))
    sleep = Sleeper(lambda: admin.fail("ListFleetNodeEvents", KeyboardInterrupt()))
    assert fleetctl(["events", "--follow"], admin, sleep=sleep) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    assert captured.err == ""
    assert sleep.waits == [2.0]


def test_help_documents_the_line_format(capsys: pytest.CaptureFixture[str]) -> None:
    """`events --help` exits 0 and spells out the line format and the 2 s follow interval."""
    assert fleetctl(["events", "--help"], ScriptedAdmin()) == 0
    out = capsys.readouterr().out
    assert "<occurredAt RFC3339>  <eventId> node=<fleetNodeId> <KIND>" in out
    assert "every 2 s until Ctrl-C" in out
