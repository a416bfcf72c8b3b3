"""The goodbye on SIGTERM/SIGINT, on virtual time (SPEC 4.10, 5.7): one heartbeat with
``stopping: true`` within 300 ms, never retried, and the exit within 1 s of the signal
whatever the gateway does."""

from __future__ import annotations

import datetime
import os
import signal

import pytest
import trio
import trio.testing

from agent.statedir import StateStore
from fleetwire.codes import Code
from tests.support.commands import Cli
from tests.support.daemon_runner import HealthSaves, start_daemon
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import FakeGateway, error_response

pytestmark = pytest.mark.trio

SIGNAL_AT = 100.0


async def stop_at(
    cli: Cli, gateway: FakeGateway, store: StateStore, signum: int = signal.SIGTERM
) -> float:
    """Run the daemon, signal it at SIGNAL_AT; when it returned (it must return 0)."""
    saves = HealthSaves(store.directory)
    async with trio.open_nursery() as nursery:
        daemon = start_daemon(nursery, cli, saves)
        await trio.sleep_until(SIGNAL_AT)
        os.kill(os.getpid(), signum)
    assert daemon.outcome is not None and daemon.outcome.code == 0, daemon.outcome
    assert "received SIG" in daemon.outcome.stderr
    assert daemon.returned_at is not None
    return daemon.returned_at


def calls_after_signal(gateway: FakeGateway) -> list[float]:
    return [c.at for c in gateway.calls_to("UploadHeartbeat") if c.at >= SIGNAL_AT]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_sends_one_stopping_heartbeat_at_once(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    signum: int,
) -> None:
    """SIGTERM or SIGINT: one heartbeat with stopping=true (and no facts) goes out at once,
    is acknowledged, and the daemon exits 0 right after."""
    make_enrolled_state(store, gateway)
    returned_at = await stop_at(cli, gateway, store, signum)
    last_at, goodbye = gateway.heartbeats[-1]
    assert goodbye.stopping is True and goodbye.facts is None
    assert last_at == SIGNAL_AT
    assert [r.stopping for _, r in gateway.heartbeats].count(True) == 1
    assert calls_after_signal(gateway) == [SIGNAL_AT]
    assert goodbye.sent_at == datetime.datetime(2026, 11, 26, 12, 1, 40, tzinfo=datetime.UTC)
    assert returned_at == SIGNAL_AT


async def test_a_gateway_that_never_answers_gets_300_ms_then_the_daemon_exits(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """Against a gateway that accepts and never answers, the goodbye is abandoned after
    300 ms and the exit comes within 1 s of the signal."""
    make_enrolled_state(store, gateway)

    async def hang_before_the_signal() -> None:
        await trio.sleep_until(SIGNAL_AT - 0.001)
        gateway.hang = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hang_before_the_signal)
        returned_at = await stop_at(cli, gateway, store)
    assert calls_after_signal(gateway) == [SIGNAL_AT]
    assert returned_at == pytest.approx(SIGNAL_AT + 0.3)
    assert returned_at - SIGNAL_AT <= 1.0


@pytest.mark.parametrize(
    "failure",
    ["down", error_response(Code.UNAVAILABLE, "draining", retry_after="1")],
    ids=["connection-refused", "unavailable"],
)
async def test_a_failed_goodbye_is_not_retried_and_does_not_delay_the_exit(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    failure: object,
) -> None:
    """A goodbye refused (connection refused, or unavailable with Retry-After) is tried once
    and the daemon exits at once."""
    make_enrolled_state(store, gateway)

    async def fail_before_the_signal() -> None:
        await trio.sleep_until(SIGNAL_AT - 0.001)
        if failure == "down":
            gateway.down = True
        else:
            gateway.script("UploadHeartbeat", failure)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fail_before_the_signal)
        returned_at = await stop_at(cli, gateway, store)
    assert calls_after_signal(gateway) == [SIGNAL_AT]
    assert returned_at == SIGNAL_AT
    assert not [r for _, r in gateway.heartbeats if r.stopping]


async def test_no_session_means_no_goodbye(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A daemon that never got a session (gateway down since its start) sends nothing when
    stopped, and exits at once."""
    make_enrolled_state(store, gateway, session_expires_at=None)
    gateway.down = True
    returned_at = await stop_at(cli, gateway, store)
    assert gateway.calls_to("UploadHeartbeat") == []
    assert returned_at == SIGNAL_AT


async def test_a_cancelled_daemon_says_no_goodbye(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """Shutdown by the caller's cancellation (not a signal: a crash, or many nodes in one
    process) sends no stopping heartbeat: only a signal is a clean stop."""
    make_enrolled_state(store, gateway)
    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, HealthSaves(store.directory))
        await trio.sleep_until(SIGNAL_AT)
        nursery.cancel_scope.cancel()
    assert gateway.heartbeats
    assert not [r for _, r in gateway.heartbeats if r.stopping]
