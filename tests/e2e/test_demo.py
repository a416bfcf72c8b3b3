"""``fleet-gateway demo``: one command, a private PostgreSQL, three real nodes, a clean exit.

Which processes are the demo's? Each child inherits the demo's environment, so a unique
marker variable identifies them in ``/proc/<pid>/environ`` (PostgreSQL too: ``runuser``
without ``-l`` keeps the environment). While the demo runs the marker must find its
PostgreSQL and its three ``fleetnode run`` processes, so "none left afterwards" is a
check that can fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.e2e.harness import Harness, Process, clean_env, program, wait_until

NODES = 3
DEMO_SECONDS = 15
DEMO_TIMEOUT_SECONDS = 120.0
DEMO_STOP_SECONDS = 30.0
# --port 0: tests take ports from the kernel (the demo's default is 8080).
DEMO_ARGS = ("--port", "0", "--nodes", str(NODES), "--duration", f"{DEMO_SECONDS}s")
MARK = "E2E_DEMO_MARK"
HEADER = re.compile(r"^ID\s+NAME\s+STATUS\s+FINGERPRINT\s+LAST SEEN\s+CONNECTIVITY\s+SKEW$")


def marked_processes(mark: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment holds ``mark``."""
    found = {}
    needle = f"{MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if needle in environ.split(b"\0") and cmdline:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def kinds(processes: dict[int, str]) -> tuple[int, int]:
    """How many of ``processes`` are PostgreSQL server processes and fleetnode daemons."""
    postgres = sum("postgres" in cmd.split()[0] for cmd in processes.values())
    fleetnode = sum(
        "fleetnode" in cmd and cmd.rstrip().endswith(" run") for cmd in processes.values()
    )
    return postgres, fleetnode


def state_dirs(processes: dict[int, str]) -> list[Path]:
    """The ``--state-dir`` of every ``fleetnode`` among ``processes``."""
    found = []
    for cmd in processes.values():
        argv = cmd.split()
        if "--state-dir" in argv and "fleetnode" in cmd:
            found.append(Path(argv[argv.index("--state-dir") + 1]))
    return found


def demo_cluster(cwd: Path) -> Path:
    """Where the demo kept its cluster: as root outside ``cwd`` (postgres cannot enter
    /root), its path recorded under ``.fleet-dev``; else in ``.fleet-dev/demo-pg``."""
    dev = cwd / ".fleet-dev"
    recorded = dev / "demo-cluster-path"
    return Path(recorded.read_text().strip()) if recorded.exists() else dev / "demo-pg"


def last_table(stdout: str) -> list[str]:
    """The rows of the last fleet table the demo printed."""
    lines = stdout.splitlines()
    headers = [i for i, line in enumerate(lines) if HEADER.match(line)]
    assert headers, f"no fleet table in the demo's output:\n{stdout}"
    rows = []
    for line in lines[headers[-1] + 1 :]:
        if not line.strip():
            break
        rows.append(line)
    return rows


@attrs.frozen
class Demo:
    process: Process
    mark: str
    cwd: Path
    node_state_dirs: list[Path] = attrs.Factory(list)  # seen while the nodes ran


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo, started once and left running in the background: conftest.py orders the
    first test of this module before the other e2e tests and the second one after them,
    so its 15 s overlap their work. Stopped (SIGTERM) at the end if it is still running."""
    harness = Harness(tmp_path_factory.mktemp("demo"))
    mark = uuid.uuid4().hex
    cwd = harness.path("demo-cwd")
    cwd.mkdir()
    try:
        with harness.scope():
            process = harness.start(
                "demo",
                [program("fleet-gateway"), "demo", *DEMO_ARGS],
                clean_env(**{MARK: mark}),
                cwd=cwd,
                separate_stderr=True,
            )
            yield Demo(process, mark, cwd)
            process.stop(timeout=DEMO_STOP_SECONDS)  # it removes its cluster on the way out
    finally:
        # Only after a failure: whatever the demo left behind (PostgreSQL runs in its own
        # session, out of reach of the demo's process group).
        for pid in marked_processes(mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(demo_cluster(cwd), ignore_errors=True)


def test_demo_runs_its_postgresql_and_three_fleetnode_daemons(demo: Demo) -> None:
    """While ``fleet-gateway demo --nodes 3`` runs, its PostgreSQL and three ``fleetnode run``
    processes, each with a state directory of its own, are alive (and found by the marker
    the final check relies on)."""

    def all_started() -> bool:
        processes = marked_processes(demo.mark)
        postgres, fleetnodes = kinds(processes)
        if postgres < 1 or fleetnodes != NODES:
            return False
        demo.node_state_dirs[:] = state_dirs(processes)
        return True

    wait_until(
        all_started,
        timeout=60,
        what=f"the demo's PostgreSQL and {NODES} fleetnode daemons",
        detail=demo.process.tail,
    )
    assert len(set(demo.node_state_dirs)) == NODES
    assert all((path / "state.json").exists() for path in demo.node_state_dirs)


def test_demo_exits_0_with_three_online_nodes_and_leaves_nothing_behind(demo: Demo) -> None:
    """``fleet-gateway demo --nodes 3 --duration 15s`` exits 0 with three ONLINE nodes in its
    last table, stops every PostgreSQL and fleetnode process it started, and removes its
    cluster and the nodes' state."""
    process = demo.process
    assert process.wait_exit(timeout=DEMO_TIMEOUT_SECONDS) == 0, process.tail()
    rows = last_table(process.text())
    assert len(rows) == NODES, rows
    assert all(re.search(r"\sONLINE\s", f"{row} ") for row in rows), rows
    assert f"{NODES}/{NODES} nodes ONLINE" in process.text()
    assert marked_processes(demo.mark) == {}
    assert not demo_cluster(demo.cwd).exists()
    for path in demo.node_state_dirs:  # known if the first test ran
        assert not path.exists()
