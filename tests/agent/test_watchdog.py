"""``fleetnode watchdog`` in process: the eventlistener protocol, the count of failed checks,
and the restarts it asks supervisord for (SPEC 5.11)."""

from __future__ import annotations

import contextlib
import logging
import xmlrpc.client
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from agent.check import Verdict
from agent.errors import ConfigurationError
from agent.supervisor import open_supervisor_client
from agent.watchdog import EventListener, ProtocolViolation, Watchdog, WatchdogOptions
from tests.support.fake_supervisord import FakeSupervisord, ListenerPeer, event

pytestmark = pytest.mark.trio

HEALTHY = Verdict(True, "ok: pid 7, last heartbeat 3s ago (limit 15s)")
STALE = Verdict(False, "last heartbeat 40s ago (limit 15s)")
RESTART = [
    "supervisor.getProcessInfo",
    "supervisor.signalProcess",
    "supervisor.stopProcess",
    "supervisor.startProcess",
]


class Checks:
    """The check the watchdog runs: the verdicts the test scripts, then the last forever."""

    def __init__(self, *verdicts: Verdict) -> None:
        self.verdicts = list(verdicts)
        self.count = 0

    def __call__(self) -> Verdict:
        self.count += 1
        return self.verdicts.pop(0) if len(self.verdicts) > 1 else self.verdicts[0]


class Harness:
    def __init__(self, peer: ListenerPeer, supervisord: FakeSupervisord, checks: Checks) -> None:
        self.peer = peer
        self.supervisord = supervisord
        self.checks = checks

    async def ticks(self, count: int) -> None:
        for _ in range(count):
            await self.peer.send("TICK_5")


@contextlib.asynccontextmanager
async def running_watchdog(checks: Checks, failures: int = 3) -> AsyncIterator[Harness]:
    """The watchdog on in-memory stdin/stdout, talking to a fake supervisord; it must return
    when its stdin ends (supervisord gone) at the end of the block."""
    supervisord = FakeSupervisord()
    ours, theirs = trio.testing.memory_stream_pair()
    async with (
        open_supervisor_client(
            "unix:///run/supervisor.sock", transport=supervisord.transport
        ) as client,
        trio.open_nursery() as nursery,
    ):
        watchdog = Watchdog(
            supervisor=client,
            check=checks,
            options=WatchdogOptions(program="fleetnode", failures=failures),
        )
        nursery.start_soon(watchdog.watch, EventListener(ours, ours))
        yield Harness(ListenerPeer(theirs), supervisord, checks)
        await theirs.send_stream.aclose()


async def test_three_failed_checks_in_a_row_restart_the_running_program(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The third failed check in a row restarts the program (SIGCONT, stop, start) and logs
    why; the count then starts again from zero."""
    caplog.set_level(logging.INFO)
    async with running_watchdog(Checks(STALE)) as h:
        await h.ticks(2)
        assert h.supervisord.restarts() == 0
        await h.ticks(1)
        assert h.supervisord.methods()[-4:] == RESTART
        assert h.supervisord.calls[-3] == ("supervisor.signalProcess", ("fleetnode", "CONT"))
        assert h.supervisord.calls[-2] == ("supervisor.stopProcess", ("fleetnode", True))
        assert h.supervisord.pid == 1001 and h.supervisord.state == "RUNNING"
        await h.ticks(2)
        assert h.supervisord.restarts() == 1
        await h.ticks(1)
        assert h.supervisord.restarts() == 2
    messages = [r.getMessage() for r in caplog.records]
    assert "restarting fleetnode (pid 1000): last heartbeat 40s ago (limit 15s)" in messages
    assert "check of fleetnode failed (2 of 3 in a row): last heartbeat 40s ago (limit 15s)" in (
        messages
    )


async def test_a_passing_check_resets_the_count() -> None:
    """Failed, failed, passed, failed, failed: no restart; checks pass through no XML-RPC."""
    checks = Checks(STALE, STALE, HEALTHY, STALE, STALE, HEALTHY)
    async with running_watchdog(checks) as h:
        await h.ticks(6)
        assert h.supervisord.restarts() == 0
        assert h.supervisord.methods() == ["supervisor.getProcessInfo"] * 4
        assert checks.count == 6


@pytest.mark.parametrize("state", ["EXITED", "STOPPED", "FATAL", "BACKOFF", "STARTING"])
async def test_a_program_supervisord_does_not_run_is_left_alone(
    state: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A revoked node (EXITED 77), one an operator stopped, or one supervisord is still
    starting: never restarted, however many checks fail, and said once in the log."""
    caplog.set_level(logging.INFO)
    async with running_watchdog(Checks(STALE)) as h:
        h.supervisord.state = state
        await h.ticks(10)
        assert h.supervisord.methods() == ["supervisor.getProcessInfo"] * 10
        h.supervisord.state = "RUNNING"  # started again by hand: watched again from zero
        await h.ticks(2)
        assert h.supervisord.restarts() == 0
        await h.ticks(1)
        assert h.supervisord.restarts() == 1
    left = [r for r in caplog.records if "left alone" in r.getMessage()]
    assert len(left) == 1
    assert left[0].getMessage().startswith(f"fleetnode is {state} in supervisord: left alone")


async def test_supervisord_unreachable_or_refusing_is_logged_and_survived(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A supervisord that cannot be reached, or refuses the start, is logged; the watchdog
    keeps answering events and restarts when it next can."""
    async with running_watchdog(Checks(STALE), failures=1) as h:
        h.supervisord.unreachable = True
        await h.ticks(2)
        h.supervisord.unreachable = False
        h.supervisord.start_fault = xmlrpc.client.Fault(50, "SPAWN_ERROR: fleetnode")
        await h.ticks(1)
        assert h.supervisord.state == "STOPPED"  # what the refused start left behind
        await h.ticks(1)  # STOPPED: left to supervisord
        h.supervisord.start_fault = None
        h.supervisord.state = "RUNNING"  # an operator started it again, still wedged
        await h.ticks(1)
        assert h.supervisord.restarts() == 2  # the refused start, then one that worked
        assert h.supervisord.methods()[-4:] == RESTART
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("cannot reach supervisord (ConnectError" in e for e in errors)
    assert any("could not restart fleetnode: supervisord refused" in e for e in errors)


async def test_other_events_are_acknowledged_without_a_check() -> None:
    """An event that is not a tick gets its RESULT and no check."""
    checks = Checks(STALE)
    async with running_watchdog(checks) as h:
        await h.peer.send("PROCESS_STATE_RUNNING", b"processname:fleetnode groupname:x")
        await h.peer.send("TICK_60")
        assert checks.count == 1


async def test_the_listener_reads_events_split_anywhere_and_stops_at_eof() -> None:
    """Header and payload may arrive in pieces; end of stdin ends the listener."""
    ours, theirs = trio.testing.memory_stream_pair()
    listener = EventListener(ours, ours)
    whole = event("TICK_5", 1, b"when:1") + event("TICK_60", 2, b"when:22")
    async with trio.open_nursery() as nursery:

        async def trickle() -> None:
            for i in range(len(whole)):
                await theirs.send_all(whole[i : i + 1])
            await theirs.send_stream.aclose()

        nursery.start_soon(trickle)
        first = await listener.next_event()
        await listener.done()
        second = await listener.next_event()
        await listener.done()
        assert await listener.next_event() is None
    assert first is not None and (first.name, first.payload) == ("TICK_5", b"when:1")
    assert second is not None and (second.name, second.payload) == ("TICK_60", b"when:22")


async def test_a_header_without_a_length_is_a_protocol_violation() -> None:
    """Garbage on stdin is an error naming it, not a hang or a crash."""
    ours, theirs = trio.testing.memory_stream_pair()
    await theirs.send_all(b"hello there\n")
    with pytest.raises(ProtocolViolation, match="without a length"):
        await EventListener(ours, ours).next_event()


async def test_credentials_go_as_basic_auth() -> None:
    """SUPERVISOR_USERNAME/PASSWORD become HTTP basic auth on every call."""
    supervisord = FakeSupervisord()
    async with open_supervisor_client(
        "http://127.0.0.1:9001", username="user", password="pw", transport=supervisord.transport
    ) as client:
        info = await client.process_info("fleetnode")
    assert (info.state, info.pid) == ("RUNNING", 1000)
    assert supervisord.authorization == ["Basic dXNlcjpwdw=="]


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1", "unix://", "http://user:pw@127.0.0.1:9001", "127.0.0.1:9001"]
)
async def test_an_unusable_supervisord_url_is_a_configuration_error(url: str) -> None:
    """Only unix:///path and http(s)://host[:port] without credentials are accepted."""
    with pytest.raises(ConfigurationError, match="invalid supervisord URL"):
        async with open_supervisor_client(url):
            pass
