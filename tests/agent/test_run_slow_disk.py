"""fleetnode run on a slow disk: a session save never stalls heartbeats, and a shutdown waits
for a save under way, so state.json is never half-written (SPEC 5.2, 5.7)."""

from __future__ import annotations

import datetime
import itertools
import os
import threading

import pytest
import trio
import trio.testing

from agent.statedir import StateStore
from tests.support.commands import Outcome, run_command
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import T0, FakeGateway

pytestmark = pytest.mark.trio

# Real seconds a blocked save waits at most: a save that blocks the event loop itself
# then fails the test (nothing can release it) instead of hanging it.
STUCK_LIMIT_SECONDS = 10.0


class SlowDisk:
    """The rename step of a save, held until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.timed_out = False

    def replace(self, src: str, dst: str, **dir_fds: int) -> None:
        self.entered.set()
        if not self.release.wait(timeout=STUCK_LIMIT_SECONDS):
            self.timed_out = True
        os.replace(src, dst, **dir_fds)


async def test_a_stuck_save_delays_no_heartbeat_and_shutdown_waits_for_it(
    gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """While the save of a refreshed session is stuck in the disk, heartbeats go on, on
    schedule and with the new session; a shutdown meanwhile waits until the save is done,
    and state.json then holds the new session, whole."""
    make_enrolled_state(store, gateway, session_expires_at=T0 + datetime.timedelta(hours=2))
    disk = SlowDisk()
    times: dict[str, float] = {}
    outcome: Outcome | None = None

    run_scope = trio.CancelScope()

    async def run() -> None:
        nonlocal outcome
        with run_scope:
            slow = StateStore(store.directory, replace=disk.replace)
            outcome = await run_command(
                slow, gateway.transport, "run", in_thread=trio.to_thread.run_sync
            )
        times["returned"] = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.to_thread.run_sync(disk.entered.wait, abandon_on_cancel=True)
        times["stuck"] = trio.current_time()
        await trio.sleep(300)
        run_scope.cancel()  # the shutdown, while the save is still stuck
        await trio.sleep(300)
        disk.release.set()
        times["released"] = trio.current_time()

    assert not disk.timed_out, "the stuck save blocked the event loop"
    assert outcome is None  # cancelled: no exit code
    assert times["returned"] >= times["released"]  # the shutdown waited for the save
    new_token = gateway.issued_tokens[-1]
    during = [c for c in gateway.calls_to("UploadHeartbeat") if c.at >= times["stuck"]]
    assert [c.status for c in during] == [200] * len(during)
    assert {c.authorization for c in during} == {f"Bearer {new_token}"}
    assert len(during) >= 9  # 300 s at 30 s +-10 %
    steps = [b.at - a.at for a, b in itertools.pairwise(during)]
    assert all(24.0 <= step <= 36.0 for step in steps), steps
    saved = store.load()
    assert saved is not None and saved.session_token == new_token
    assert [p.name for p in store.directory.iterdir() if p.name.endswith(".tmp")] == []
