"""health.json as the daemon keeps it, and ``check`` judging it, on virtual time (SPEC 5.11)."""

from __future__ import annotations

import datetime
import json
import os
import stat

import pytest
import trio
import trio.testing

from agent.health import HEALTH_FILE
from agent.statedir import StateStore
from tests.support.commands import Cli
from tests.support.daemon_runner import HealthSaves, start_daemon
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import T0, FakeGateway

pytestmark = pytest.mark.trio

HOUR = 3600.0


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def last_acknowledged(gateway: FakeGateway, before: float) -> float:
    return max(t for t, _ in gateway.heartbeats if t < before)


async def test_health_is_saved_once_per_heartbeat_attempt_and_says_what_happened(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """Over an hour with a 10-minute outage, health.json is saved once at start and once per
    heartbeat attempt (never more), 0600, holding the attempt's outcome and no secret."""
    state = make_enrolled_state(store, gateway)
    saves = HealthSaves(store.directory)

    def down() -> None:
        gateway.down = True

    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, saves)
        await trio.sleep_until(600)
        down()
        await trio.sleep_until(1150)
        during = saves.last
        failed_at = gateway.calls_to("UploadHeartbeat")[-1].at
        gateway.down = False
        await trio.sleep_until(HOUR)
        nursery.cancel_scope.cancel()

    attempts = gateway.calls_to("UploadHeartbeat")
    assert len(saves.saved) == len(attempts) + 1
    assert saves.saved[0] == (0.0, saves.saved[0][1])
    assert saves.saved[0][1].last_attempt_at is None  # the start: "this daemon exists"
    assert [t for t, _ in saves.saved[1:]] == [c.at for c in attempts]

    ok_before = last_acknowledged(gateway, 600)
    assert during.pid == os.getpid()
    assert during.started_at == T0
    assert during.last_heartbeat_at == at(ok_before)  # the fake's receivedAt, its clock
    assert during.last_attempt_at == at(failed_at)
    assert during.consecutive_failures >= 3
    assert during.last_error is not None and "Connection refused" in during.last_error
    assert during.heartbeat_interval_seconds == 30.0
    assert during.session_expires_at == state.session_expires_at

    final = saves.last
    assert final.consecutive_failures == 0 and final.last_error is None
    assert final.last_heartbeat_at == at(gateway.heartbeats[-1][0])
    path = store.directory / HEALTH_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    for secret in (state.api_key, state.session_token, state.identity_private_key):
        assert secret not in text
    assert not [p for p in store.directory.iterdir() if p.name.endswith(".tmp")]


async def test_check_passes_until_the_last_acknowledged_heartbeat_is_older_than_max_age(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """With the gateway down, check stays 0 while the last acknowledged heartbeat is at most
    3 x 30 s old, then exits 1 naming its age, the limit and the last error; --max-age
    moves the limit."""
    make_enrolled_state(store, gateway)
    saves = HealthSaves(store.directory)
    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, saves)
        await trio.sleep_until(300)
        gateway.down = True
        last = last_acknowledged(gateway, 300)

        await trio.sleep_until(last + 59)
        within = await cli("check", "--max-age", "1m")
        await trio.sleep_until(last + 61)
        past = await cli("check", "--max-age", "60s")
        await trio.sleep_until(last + 89)
        fresh = await cli("check")
        await trio.sleep_until(last + 91)
        stale = await cli("check")
        nursery.cancel_scope.cancel()

    assert within.code == 0, within.stdout
    assert within.stdout.startswith(f"ok: pid {os.getpid()}, last heartbeat 59s ago (limit 1m)")
    assert past.code == 1
    assert past.stdout.startswith("last heartbeat 1m1s ago (limit 1m): UploadHeartbeat: ")
    assert fresh.code == 0, fresh.stdout
    assert "failed since" in fresh.stdout and "Connection refused" in fresh.stdout
    assert stale.code == 1
    assert stale.stdout.startswith("last heartbeat 1m31s ago (limit 1m30s): UploadHeartbeat: ")
    assert "Connection refused" in stale.stdout
    for outcome in (within, past, fresh, stale):
        assert outcome.stdout.count("\n") == 1 and outcome.stderr == ""


async def test_check_is_not_fooled_by_the_gateways_clock(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A gateway clock 10 minutes behind ours does not make a heartbeating daemon look stale:
    with no failure since, the age is measured on the node's own clock."""
    make_enrolled_state(store, gateway)
    gateway.clock_offset = datetime.timedelta(minutes=-10)
    saves = HealthSaves(store.directory)
    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, saves)
        await trio.sleep_until(1000)
        outcome = await cli("check")
        nursery.cancel_scope.cancel()
    assert outcome.code == 0, outcome.stdout
    assert saves.last.last_heartbeat_at is not None
    assert saves.last.last_heartbeat_at < at(1000 - 600)  # the gateway's clock, as it said


async def test_check_fails_for_a_daemon_without_a_heartbeat_and_after_it_stopped(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A daemon that never got a heartbeat through fails check from the start; once it has
    stopped, check says no daemon runs (its pid no longer holds the state lock)."""
    make_enrolled_state(store, gateway, session_expires_at=None)
    gateway.down = True
    saves = HealthSaves(store.directory)
    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, saves)
        await trio.sleep_until(120)
        waiting = await cli("check")
        nursery.cancel_scope.cancel()
    stopped = await cli("check")
    status = await cli("status")

    assert waiting.code == 1
    assert waiting.stdout == (
        f"no heartbeat acknowledged since pid {os.getpid()} started 2m ago (limit 1m30s)\n"
    )
    assert stopped.code == 1
    assert stopped.stdout == (
        f"no daemon running (health.json is from pid {os.getpid()}, which no longer runs; "
        "no heartbeat acknowledged)\n"
    )
    assert f"daemon_pid: {os.getpid()} (not running)\n" in status.stdout
    assert "last_heartbeat: never\n" in status.stdout


async def test_status_shows_the_running_daemon_from_its_health(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """status shows the daemon's pid as running, its last heartbeat's age, its failures and
    last error; --json holds the same under "daemon"."""
    make_enrolled_state(store, gateway)
    saves = HealthSaves(store.directory)
    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, saves, "--heartbeat-interval", "20s")
        await trio.sleep_until(100)
        gateway.down = True
        await trio.sleep_until(150)
        text = await cli("status")
        as_json = await cli("status", "--json")
        nursery.cancel_scope.cancel()

    last = last_acknowledged(gateway, 100)
    assert f"daemon_pid: {os.getpid()} (running)\n" in text.stdout
    assert f"last_heartbeat: {int(150 - last)}s ago (" in text.stdout
    failures = saves.last.consecutive_failures
    assert failures >= 1
    assert f"consecutive_failures: {failures}\n" in text.stdout
    assert "last_error: UploadHeartbeat: cannot reach the gateway" in text.stdout
    daemon = json.loads(as_json.stdout)["daemon"]
    assert daemon["pid"] == os.getpid() and daemon["running"] is True
    assert daemon["last_heartbeat_age_seconds"] == pytest.approx(150 - last, abs=1e-3)
    assert daemon["consecutive_failures"] == failures
    assert daemon["heartbeat_interval_seconds"] == 20.0
