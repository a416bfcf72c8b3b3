"""fleetnode under a real supervisord running the shipped deploy/supervisord/fleetnode.conf.

The sample is loaded as an operator would drop it into conf.d/; only its paths and its
user are substituted (the literals below must each occur exactly once, so a changed
sample fails here instead of going untested). ``user=fleetnode`` becomes the user
running the tests (root in CI): supervisord only switches users when it runs as root,
and switching to the user it already is, is a no-op.
"""

from __future__ import annotations

import datetime
import getpass
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.e2e.actors import enroll, now, session_token, wait_online_since
from tests.e2e.conftest import Fleet
from tests.e2e.harness import Process, clean_env, program, wait_until

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "supervisord" / "fleetnode.conf"
SUPERVISORD_MAIN = """\
[supervisord]
nodaemon=true
logfile={root}/supervisord.log
pidfile={root}/supervisord.pid
childlogdir={root}
loglevel=info

[unix_http_server]
file={socket}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket}

[include]
files = {root}/conf.d/*.conf
"""


def substitute(text: str, replacements: dict[str, str]) -> str:
    for literal, value in replacements.items():
        assert text.count(literal) == 1, f"{literal!r} should occur once in {SAMPLE}"
        text = text.replace(literal, value)
    return text


@attrs.frozen
class Supervisor:
    process: Process
    config: Path
    state_dir: Path
    program_log: Path
    fleet: Fleet
    node_id: int
    started: datetime.datetime

    @property
    def log(self) -> Path:
        return self.config.parent / "supervisord.log"

    def ctl(self, *args: str) -> str:
        done = self.fleet.harness.run(
            [program("supervisorctl"), "-c", str(self.config), *args], clean_env(), ok=False
        )
        return done.stdout

    def status(self) -> str:
        return self.ctl("status", "fleetnode")

    def pid(self) -> int:
        return int(self.ctl("pid", "fleetnode").strip() or 0)

    def in_state(self, state: str) -> bool:
        """Whether ``supervisorctl status`` shows the program in ``state``."""
        fields = self.status().split()
        return len(fields) > 1 and fields[1] == state

    def wait_state(self, state: str, timeout: float = 10.0) -> None:
        wait_until(
            lambda: self.in_state(state),
            timeout=timeout,
            what=f"fleetnode to be {state} under supervisord",
            detail=self.tail,
        )

    def log_lines(self, pattern: str) -> list[str]:
        text = self.log.read_text() if self.log.exists() else ""
        return [line for line in text.splitlines() if re.search(pattern, line)]

    def tail(self) -> str:
        program_log = self.program_log.read_text() if self.program_log.exists() else ""
        return (
            f"{self.process.tail()}\n--- supervisord.log ---\n"
            f"{self.log.read_text() if self.log.exists() else ''}\n"
            f"--- fleetnode log ---\n{program_log[-3000:]}"
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
    (root / "conf.d").mkdir(parents=True)
    # A unix socket path must stay under ~100 bytes; pytest's tmp_path may not.
    socket_dir = Path(tempfile.mkdtemp(prefix="fleet-sv-"))
    program_log = root / "fleetnode.log"
    harness.logs.append(program_log)
    sample = substitute(
        SAMPLE.read_text(),
        {
            "/opt/fleetnode/bin/fleetnode": program("fleetnode"),
            "/var/lib/fleetnode": str(state_dir),
            "/var/log/fleetnode/fleetnode.log": str(program_log),
            "user=fleetnode": f"user={getpass.getuser()}",
        },
    )
    (root / "conf.d" / "fleetnode.conf").write_text(sample)
    config = root / "supervisord.conf"
    config.write_text(SUPERVISORD_MAIN.format(root=root, socket=socket_dir / "sv.sock"))
    started = now()
    process = harness.start("supervisord", [program("supervisord"), "-c", str(config)], clean_env())
    harness.logs.append(root / "supervisord.log")
    try:
        supervisor = Supervisor(process, config, state_dir, program_log, fleet, node_id, started)
        supervisor.wait_state("RUNNING")
        yield supervisor
    finally:
        process.stop()  # SIGTERM: supervisord stops fleetnode first, then itself
        shutil.rmtree(socket_dir, ignore_errors=True)


def test_supervisorctl_stop_stops_the_agent_cleanly(supervised: Supervisor) -> None:
    """``supervisorctl stop fleetnode`` ends the heartbeating agent with exit 0: STOPPED."""
    fleet = supervised.fleet
    wait_online_since(fleet.operator, supervised.node_id, supervised.started)
    pid = supervised.pid()

    assert "stopped" in supervised.ctl("stop", "fleetnode")
    assert supervised.in_state("STOPPED")
    assert supervised.log_lines(r"stopped: fleetnode \(exit status 0\)"), supervised.tail()
    assert not _alive(pid)


def test_revoked_node_ends_exited_77_and_is_not_restarted(supervised: Supervisor) -> None:
    """A revoked node exits 77, which the sample lists as expected: EXITED, never respawned."""
    fleet = supervised.fleet
    node_id = supervised.node_id
    wait_online_since(fleet.operator, node_id, supervised.started)

    fleet.operator.revoke(node_id)
    # The gateway asks for 5 s heartbeats: the next one is refused, then the handshake.
    supervised.wait_state("EXITED", timeout=15)
    assert supervised.log_lines(r"exited: fleetnode \(exit status 77; expected\)"), (
        supervised.tail()
    )
    # supervisord decides on a restart in the loop iteration after the exit; these
    # round trips through its loop happen after that decision.
    assert supervised.in_state("EXITED")
    assert supervised.in_state("EXITED")
    assert len(supervised.log_lines(r"spawned: 'fleetnode'")) == 1, supervised.tail()


def test_kill_9_is_restarted_and_resumes_with_its_saved_session(supervised: Supervisor) -> None:
    """After ``kill -9`` supervisord restarts the agent, which heartbeats again with the session
    it saved: no new handshake, the same session token."""
    fleet = supervised.fleet
    node_id = supervised.node_id
    wait_online_since(fleet.operator, node_id, supervised.started)
    token = session_token(supervised.state_dir)
    handshakes = fleet.gateway.handshakes()
    assert handshakes >= 1  # enroll's, at least
    pid = supervised.pid()

    os.kill(pid, signal.SIGKILL)
    killed = now()
    new_pid = wait_until(
        lambda: (p := supervised.pid()) not in (0, pid) and p,
        what="supervisord to start a new fleetnode",
        detail=supervised.tail,
    )
    assert supervised.log_lines(r"exited: fleetnode \(terminated by SIGKILL; not expected\)")
    supervised.wait_state("RUNNING")

    wait_online_since(fleet.operator, node_id, killed)
    assert supervised.pid() == new_pid
    assert fleet.gateway.handshakes() == handshakes
    assert session_token(supervised.state_dir) == token


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
