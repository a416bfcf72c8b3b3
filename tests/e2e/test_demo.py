"""``fleet-gateway demo``: one command, a private PostgreSQL, three real nodes, a clean exit.

Which processes are the demo's? Each child inherits the demo's environment, so a unique
marker variable identifies them in ``/proc/<pid>/environ`` (PostgreSQL too: ``runuser``
without ``-l`` keeps the environment). While the demo runs the marker must find its
PostgreSQL and its three ``fleetnode run`` processes, so "none left afterwards" is a
check that can fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from tests.e2e.harness import Harness, clean_env, program, wait_until

NODES = 3
DEMO_SECONDS = 15
DEMO_TIMEOUT_SECONDS = 120.0
MARK = "E2E_DEMO_MARK"
HEADER = re.compile(r"^ID\s+NAME\s+STATUS\s+FINGERPRINT\s+LAST SEEN\s+CONNECTIVITY\s+SKEW$")


def demo_command() -> list[str]:
    """``fleet-gateway demo``; until the lead wires ``demo`` into ``gateway.__main__``, the
    same ``run()`` with the dev commands added (what the console script will do)."""
    gateway = program("fleet-gateway")
    wired = (
        "demo"
        in subprocess.run([gateway, "--help"], capture_output=True, text=True, check=True).stdout
    )
    if wired:
        return [gateway, "demo"]
    return [
        sys.executable,
        "-c",
        "import os, sys; from gateway.__main__ import run, COMMANDS; "
        "from gateway import devcommands; "
        "sys.exit(run(sys.argv[1:], os.environ, COMMANDS + devcommands.COMMANDS))",
        "demo",
    ]


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


def test_demo_runs_three_online_nodes_and_leaves_nothing_behind(harness: Harness) -> None:
    """``fleet-gateway demo --nodes 3 --duration 15s`` exits 0 with three ONLINE nodes in its
    last table, and stops every PostgreSQL and fleetnode process it started."""
    mark = uuid.uuid4().hex
    cwd = harness.path("demo-cwd")
    cwd.mkdir()
    demo = harness.start(
        "demo",
        # --port 0: tests take ports from the kernel (the demo's default is 8080).
        [*demo_command(), "--port", "0", "--nodes", str(NODES), "--duration", f"{DEMO_SECONDS}s"],
        clean_env(**{MARK: mark}),
        cwd=cwd,
        separate_stderr=True,
    )

    def all_started() -> bool:
        postgres, fleetnodes = kinds(marked_processes(mark))
        return postgres >= 1 and fleetnodes == NODES

    wait_until(
        all_started,
        timeout=60,
        what=f"the demo's PostgreSQL and {NODES} fleetnode daemons",
        detail=demo.tail,
    )

    assert demo.wait_exit(timeout=DEMO_TIMEOUT_SECONDS) == 0, demo.tail()
    rows = last_table(demo.text())
    assert len(rows) == NODES, rows
    assert all(re.search(r"\sONLINE\s", f"{row} ") for row in rows), rows
    assert f"{NODES}/{NODES} nodes ONLINE" in demo.text()
    assert marked_processes(mark) == {}
    # Its cluster is gone too (as root it lives outside cwd; the path is recorded).
    recorded = cwd / ".fleet-dev" / "demo-cluster-path"
    cluster = (
        Path(recorded.read_text().strip()) if recorded.exists() else cwd / ".fleet-dev" / "demo-pg"
    )
    assert not cluster.exists()
