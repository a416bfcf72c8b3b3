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
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from supervisor.xmlrpc import SupervisorTransport

from tests.e2e.actors import enroll, now, session_token, wait_online_since
from tests.e2e.conftest import Fleet
from tests.e2e.harness import Process, clean_env, deployed_sample, program, wait_until

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


@attrs.frozen
class Supervisor:
    process: Process
    config: Path
    socket: Path
    state_dir: Path
    program_log: Path
    fleet: Fleet
    node_id: int
    started: datetime.datetime

    @property
    def log(self) -> Path:
        return self.config.parent / "supervisord.log"

    def ctl(self, *args: str) -> str:
        """``supervisorctl`` through the unix socket of our config, as an operator types it."""
        done = self.fleet.harness.run(
            [program("supervisorctl"), "-c", str(self.config), *args], clean_env(), ok=False
        )
        return done.stdout

    def info(self) -> dict[str, Any]:
        """supervisord's view of the program (statename, pid, exitstatus), asked over the
        same socket through its XML-RPC API: cheap enough to poll, unlike supervisorctl."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        try:
            proxy = xmlrpc.client.ServerProxy("http://localhost", transport=transport)
            info = proxy.supervisor.getProcessInfo("fleetnode")
            assert isinstance(info, dict)
            return info
        except OSError:  # not listening yet
            return {}
        finally:
            transport.close()

    def wait_state(self, state: str, timeout: float = 10.0) -> dict[str, Any]:
        def in_state() -> dict[str, Any] | None:
            info = self.info()
            return info if info.get("statename") == state else None

        return wait_until(
            in_state,
            timeout=timeout,
            what=f"fleetnode to be {state} under supervisord",
            detail=self.tail,
        )

    def status(self) -> list[str]:
        """The fields of ``supervisorctl status fleetnode``: name, state, details."""
        return self.ctl("status", "fleetnode").split()

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
    sample = deployed_sample(
        SAMPLE,
        {
            "/opt/fleetnode/bin/fleetnode": program("fleetnode"),
            "/var/lib/fleetnode": str(state_dir),
            "/var/log/fleetnode/fleetnode.log": str(program_log),
            "user=fleetnode": f"user={getpass.getuser()}",
        },
    )
    (root / "conf.d" / "fleetnode.conf").write_text(sample)
    config = root / "supervisord.conf"
    socket = socket_dir / "sv.sock"
    config.write_text(SUPERVISORD_MAIN.format(root=root, socket=socket))
    started = now()
    process = harness.start("supervisord", [program("supervisord"), "-c", str(config)], clean_env())
    harness.logs.append(root / "supervisord.log")
    try:
        supervisor = Supervisor(
            process, config, socket, state_dir, program_log, fleet, node_id, started
        )
        supervisor.wait_state("RUNNING")
        yield supervisor
    finally:
        process.stop()  # SIGTERM: supervisord stops fleetnode first, then itself
        shutil.rmtree(socket_dir, ignore_errors=True)


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
