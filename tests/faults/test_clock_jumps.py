"""Fault: the node's wall clock jumps by hours, forwards and backwards, while ``run`` runs.

The daemon schedules on Trio's monotonic clock; its wall clock only stamps heartbeats and
measures how long a session has left. Here the gateway (the fake of tests/agent) keeps true
time while the node's clock is moved through the ``Runtime.wall_clock`` seam, and the test
counts handshakes: a wrong clock may cost a refresh now and then, never a storm, never a crash.
"""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from agent.statedir import StateStore
from tests.support.commands import Outcome, run_command, secrets_seen
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import FakeGateway, virtual_wall_clock

pytestmark = pytest.mark.trio

HOUR = 3600.0
DAY = 24 * HOUR
DAYS = 3
INTERVAL_SECONDS = 300  # the gateway's wish: fewer heartbeats, same schedule logic
COMPLETE = "CompleteAuthHandshake"
# A right clock refreshes once a day; a clock ahead by more than the session's lifetime
# may refresh once an hour. More than that is a storm: the fake refuses to serve it.
MAX_HANDSHAKES = DAYS * 24 + 1


class StormError(AssertionError):
    """Raised through the transport, so a storm ends the run at once instead of spinning."""


def guarded(gateway: FakeGateway) -> httpx.MockTransport:
    """The fake gateway's transport, failing the run at the first handshake past the cap."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if (
            request.url.path.endswith(COMPLETE)
            and len(gateway.calls_to(COMPLETE)) >= MAX_HANDSHAKES
        ):
            raise StormError(f"refresh storm: {MAX_HANDSHAKES} handshakes already")
        return await gateway.handle(request)

    return httpx.MockTransport(handle)


class JumpingClock:
    """The node's wall clock: true (virtual) time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = datetime.timedelta(0)

    def __call__(self) -> datetime.datetime:
        return virtual_wall_clock() + self.offset

    def jump(self, hours: float) -> None:
        self.offset += datetime.timedelta(hours=hours)


async def run_daemon(
    store: StateStore,
    gateway: FakeGateway,
    clock: JumpingClock,
    seconds: float,
    jumps: dict[float, float],
) -> Outcome:
    """``fleetnode run`` for ``seconds`` of virtual time with the clock jumping by
    ``jumps[at]`` hours at each ``at``."""

    async def jump_at(at: float, hours: float) -> None:
        await trio.sleep_until(at)
        clock.jump(hours)

    async with trio.open_nursery() as nursery:
        for at, hours in jumps.items():
            nursery.start_soon(jump_at, at, hours)
        outcome = await run_command(
            store, guarded(gateway), "run", seed=11, seconds=seconds, wall_clock=clock
        )
        nursery.cancel_scope.cancel()
    return outcome


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state")


@pytest.mark.parametrize(
    "jumps",
    [
        pytest.param({HOUR: +3.0, 5 * HOUR: -7.0, 9 * HOUR: +4.0}, id="few-hours-both-ways"),
        pytest.param({HOUR: +30.0}, id="forward-past-the-session-ttl"),
        pytest.param({HOUR: -30.0}, id="backward-past-the-session-ttl"),
        pytest.param({HOUR: +30.0, 10 * HOUR: -60.0, 20 * HOUR: +45.0}, id="see-saw-of-days"),
    ],
)
async def test_clock_jumps_cause_no_refresh_storm_and_no_crash(
    store: StateStore, autojump_clock: trio.testing.MockClock, jumps: dict[float, float]
) -> None:
    """Over three days with the node's clock jumping by hours or days, the daemon keeps
    heartbeating on schedule, never exits, and handshakes at most once an hour."""
    gateway = FakeGateway()  # the gateway keeps true time
    gateway.interval_seconds = INTERVAL_SECONDS
    state = make_enrolled_state(store, gateway)  # a session of 24 h, as the gateway issues
    clock = JumpingClock()

    outcome = await run_daemon(store, gateway, clock, DAYS * DAY, jumps)

    assert outcome.code is None, outcome.stderr
    assert not secrets_seen(state, gateway, outcome.stderr)
    times = [call.at for call in gateway.calls_to(COMPLETE)]
    assert len(times) <= MAX_HANDSHAKES
    assert all(b - a >= HOUR - 1 for a, b in itertools.pairwise(times)), times
    # A clock behind lets a session expire on the gateway first: that heartbeat gets one
    # 401, and its retry with a new session succeeds at once (once per session lifetime).
    refused = [call for call in gateway.calls if call.status != 200]
    assert all(call.status == 401 and call.method == "UploadHeartbeat" for call in refused)
    assert len(refused) <= DAYS + 1
    for call in refused:
        assert any(at == call.at for at, _ in gateway.heartbeats), "a refused beat was lost"
    beats = [at for at, _ in gateway.heartbeats]
    assert len(beats) >= DAYS * DAY / INTERVAL_SECONDS - 2
    assert max(b - a for a, b in itertools.pairwise(beats)) <= 1.2 * INTERVAL_SECONDS
