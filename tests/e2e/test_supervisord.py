"""fleetnode under a real supervisord running the shipped deploy/supervisord/fleetnode.conf.

The sample is loaded as an operator would drop it into conf.d/; only its paths, its user
and the watchdog's tick are substituted (the literals below must each occur as often as
stated, so a changed sample fails here instead of going untested). ``user=fleetnode``
becomes the user running the tests (root in CI): supervisord only switches users when it
runs as root, and switching to the user it already is, is a no-op. The watchdog listens
to ``TICK_5`` instead of ``TICK_60``, so its restarts come within seconds; a second
listener, the tests' own, counts the ticks (a restart that must not happen is proved by
ticks passing, not by sleeping).
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.e2e.actors import enroll, now, session_token, wait_online_since
from tests.e2e.conftest import Fleet
from tests.e2e.harness import deployed_sample, program, wait_until
from tests.e2e.supervisord import Supervisord, running_supervisord

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "supervisord" / "fleetnode.conf"
TICK = 5.0  # seconds: the TICK_5 the test's watchdog listens to
FAILURES = 3  # the watchdog's default --failures
# A restart after the watchdog's decision: SIGCONT, SIGTERM, the goodbye (300 ms), exit,
# spawn; the bound leaves room for a loaded CI machine.
RESTART_SECONDS = 5.0
# The tests' own listener: one line in the file named by argv[1] per TICK_5.
TICK_COUNTER = """\
import sys
while True:
    sys.stdout.write("READY\\n")
    sys.stdout.flush()
    header = sys.stdin.readline()
    if not header:
        break
    length = int(dict(t.split(":", 1) for t in header.split())["len"])
    sys.stdin.read(length)
    with open(sys.argv[1], "a") as ticks:
        ticks.write("tick\\n")
    sys.stdout.write("RESULT 2\\nOK")
    sys.stdout.flush()
"""
TICK_COUNTER_CONF = """\
[eventlistener:tick-counter]
command={python} {script} {ticks}
events=TICK_5
"""


@attrs.frozen
class Supervisor(Supervisord):
    """supervisord running the sample: the node's daemon and its watchdog."""

    state_dir: Path
    program_log: Path
    watchdog_log: Path
    ticks: Path
    fleet: Fleet
    node_id: int
    started: datetime.datetime

    def watchdog_events(self) -> list[str]:
        """The watchdog's log lines (JSON, as the sample asks), their ``event`` texts."""
        text = self.watchdog_log.read_text() if self.watchdog_log.exists() else ""
        return [json.loads(line)["event"] for line in text.splitlines() if line.startswith("{")]

    def tick_count(self) -> int:
        return len(self.ticks.read_text().splitlines()) if self.ticks.exists() else 0

    def wait_ticks(self, count: int) -> None:
        """Wait until ``count`` more TICK_5 events have gone to the listeners."""
        target = self.tick_count() + count
        wait_until(
            lambda: self.tick_count() >= target,
            timeout=(count + 2) * TICK,
            what=f"{count} ticks",
            detail=self.tail,
        )

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = json.loads((self.state_dir / "health.json").read_text())
        return health

    def tail(self) -> str:
        program_log = self.program_log.read_text() if self.program_log.exists() else ""
        watchdog_log = self.watchdog_log.read_text() if self.watchdog_log.exists() else ""
        return (
            f"{super().tail()}\n--- fleetnode log ---\n{program_log[-3000:]}\n"
            f"--- watchdog log ---\n{watchdog_log[-3000:]}"
        )


@pytest.fixture
def supervised(shared_fleet: Fleet) -> Iterator[Supervisor]:
    """An enrolled node whose ``fleetnode run`` supervisord started from the sample."""
    fleet = shared_fleet
    harness = fleet.harness
    name = harness.unique("node-s")
    state_dir = harness.path(name)
    node_id = enroll(harness, fleet.operator, state_dir, name)
    root = harness.path(f"supervisor-{name}")
    program_log = root / "fleetnode.log"
    watchdog_log = root / "watchdog.log"
    harness.logs.extend([program_log, watchdog_log])
    sample = deployed_sample(
        SAMPLE,
        {
            "/opt/fleetnode/bin/fleetnode": program("fleetnode"),
            "/var/lib/fleetnode": str(state_dir),
            "/var/log/fleetnode/fleetnode.log": str(program_log),
            "/var/log/fleetnode/watchdog.log": str(watchdog_log),
            "user=fleetnode": f"user={getpass.getuser()}",
            "events=TICK_60": "events=TICK_5",
        },
        # The daemon and its watchdog share the program and the state directory.
        occurrences={"/opt/fleetnode/bin/fleetnode": 2, "/var/lib/fleetnode": 2},
    )
    ticks = root / "ticks"
    counter = harness.path(f"tick_counter-{name}.py")
    counter.write_text(TICK_COUNTER)
    confs = {
        "fleetnode.conf": sample,
        "tick-counter.conf": TICK_COUNTER_CONF.format(
            python=sys.executable, script=counter, ticks=ticks
        ),
    }
    started = now()
    with running_supervisord(harness, root, confs, "fleetnode") as sv:
        supervisor = Supervisor(
            harness,
            sv.process,
            sv.config,
            sv.socket,
            sv.program,
            state_dir,
            program_log,
            watchdog_log,
            ticks,
            fleet,
            node_id,
            started,
        )
        supervisor.wait_state("RUNNING")
        supervisor.wait_state("RUNNING", name="fleetnode-watchdog")
        yield supervisor


def test_supervisorctl_stop_stops_the_agent_cleanly(supervised: Supervisor) -> None:
    """``supervisorctl stop fleetnode`` ends the heartbeating agent with exit 0: STOPPED."""
    wait_online_since(supervised.fleet.operator, supervised.node_id, supervised.started)
    pid = supervised.info()["pid"]

    assert supervised.ctl("stop", "fleetnode").split() == ["fleetnode:", "stopped"]
    assert supervised.status()[:2] == ["fleetnode", "STOPPED"]
    info = supervised.info()
    assert (info["statename"], info["exitstatus"]) == ("STOPPED", 0)
    assert supervised.log_lines(r"stopped: fleetnode \(exit status 0\)"), supervised.tail()
    assert not _alive(pid)
    assert "said goodbye to the gateway" in supervised.program_log.read_text()


def test_supervisorctl_stop_shows_the_node_stopped_not_offline(supervised: Supervisor) -> None:
    """After ``supervisorctl stop fleetnode`` the node shows STOPPED in ``fleetctl nodes``
    within 1 s (the daemon's goodbye), not ONLINE until it times out, nor OFFLINE."""
    fleet = supervised.fleet
    wait_online_since(fleet.operator, supervised.node_id, supervised.started)

    assert supervised.ctl("stop", "fleetnode").split() == ["fleetnode:", "stopped"]

    def stopped() -> dict[str, Any] | None:
        node = fleet.operator.peek(supervised.node_id)
        return node if node.get("connectivity") == "CONNECTIVITY_STOPPED" else None

    wait_until(stopped, timeout=1.0, what="the node to show STOPPED", detail=supervised.tail)
    assert fleet.operator.node(supervised.node_id)["connectivity"] == "CONNECTIVITY_STOPPED"
    rows = fleet.operator.ctl("nodes").stdout.splitlines()
    [row] = [line for line in rows if line.split()[:1] == [str(supervised.node_id)]]
    assert "STOPPED" in row and "OFFLINE" not in row


def test_revoked_node_ends_exited_77_and_is_not_restarted(supervised: Supervisor) -> None:
    """A revoked node exits 77, which the sample lists as expected: EXITED, never respawned."""
    fleet = supervised.fleet
    wait_online_since(fleet.operator, supervised.node_id, supervised.started)

    fleet.operator.revoke(supervised.node_id)
    # The gateway asks for 5 s heartbeats: the next one is refused, then the handshake.
    info = supervised.wait_state("EXITED", timeout=15)
    assert info["exitstatus"] == 77
    assert supervised.log_lines(r"exited: fleetnode \(exit status 77; expected\)"), (
        supervised.tail()
    )
    # supervisord decides on a restart in its loop iteration after the exit; this
    # round trip through its loop comes after that decision.
    assert supervised.status()[:2] == ["fleetnode", "EXITED"]
    assert len(supervised.log_lines(r"spawned: 'fleetnode'")) == 1, supervised.tail()

    # Nor does the watchdog: its check now fails at every tick (no daemon runs), more than
    # the FAILURES in a row that restart a RUNNING program, and it leaves EXITED alone.
    supervised.wait_ticks(FAILURES + 2)
    assert supervised.status()[:2] == ["fleetnode", "EXITED"]
    assert len(supervised.log_lines(r"spawned: 'fleetnode'")) == 1, supervised.tail()
    events = supervised.watchdog_events()
    assert [e for e in events if e.startswith("fleetnode is EXITED in supervisord: left alone")]
    assert not [e for e in events if e.startswith("restarting")], supervised.tail()


def test_kill_9_is_restarted_and_resumes_with_its_saved_session(supervised: Supervisor) -> None:
    """After ``kill -9`` supervisord restarts the agent, which heartbeats again with the session
    it saved: no new handshake, the same session token."""
    fleet = supervised.fleet
    wait_online_since(fleet.operator, supervised.node_id, supervised.started)
    token = session_token(supervised.state_dir)
    handshakes = fleet.gateway.handshakes()
    assert handshakes >= 1  # enroll's, at least
    pid = supervised.info()["pid"]

    os.kill(pid, signal.SIGKILL)
    killed = now()

    def respawned() -> dict[str, Any] | None:
        info = supervised.info()
        return info if info.get("statename") == "RUNNING" and info["pid"] != pid else None

    restarted = wait_until(
        respawned,
        what="supervisord to run a new fleetnode",
        detail=supervised.tail,
    )
    assert supervised.log_lines(r"exited: fleetnode \(terminated by SIGKILL; not expected\)")

    wait_online_since(fleet.operator, supervised.node_id, killed)
    assert supervised.info()["pid"] == restarted["pid"]  # the same process heartbeats
    assert fleet.gateway.handshakes() == handshakes
    assert session_token(supervised.state_dir) == token


def test_a_daemon_stopped_with_sigstop_is_restarted_by_the_watchdog(
    supervised: Supervisor,
) -> None:
    """A daemon frozen with SIGSTOP stays RUNNING for supervisord; once its last heartbeat
    is older than 3 x its interval, the watchdog's third failed TICK_5 in a row restarts it
    (within FAILURES x TICK): a new pid in supervisorctl, and heartbeats again."""
    fleet = supervised.fleet
    wait_online_since(fleet.operator, supervised.node_id, supervised.started)
    frozen_pid = supervised.info()["pid"]

    os.kill(frozen_pid, signal.SIGSTOP)
    health = supervised.health()  # frozen: this is its last word
    assert health["pid"] == frozen_pid
    max_age = 3 * health["heartbeat_interval_seconds"]
    stale_from = datetime.datetime.fromisoformat(health["last_attempt_at"]) + (
        datetime.timedelta(seconds=max_age)
    )
    assert supervised.info()["statename"] == "RUNNING"  # supervisord alone sees nothing

    def respawned() -> dict[str, Any] | None:
        info = supervised.info()
        return info if info.get("statename") == "RUNNING" and info["pid"] != frozen_pid else None

    deadline = FAILURES * TICK + RESTART_SECONDS
    waited = (stale_from - now()).total_seconds() + deadline
    restarted = wait_until(
        respawned, timeout=waited, what="the watchdog to restart fleetnode", detail=supervised.tail
    )
    restarted_at = now()
    assert stale_from < restarted_at <= stale_from + datetime.timedelta(seconds=deadline)
    status = supervised.status()
    assert status[:4] == ["fleetnode", "RUNNING", "pid", f"{restarted['pid']},"], status
    assert not _alive(frozen_pid)
    events = supervised.watchdog_events()
    restarting = [e for e in events if e.startswith(f"restarting fleetnode (pid {frozen_pid}): ")]
    assert restarting, supervised.tail()
    assert "last heartbeat" in restarting[0] and f"(limit {max_age:.0f}s)" in restarting[0]

    wait_online_since(fleet.operator, supervised.node_id, restarted_at)
    assert supervised.health()["pid"] == restarted["pid"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
