"""A real supervisord for e2e tests: its main config, its socket, and how to ask it.

The deploy/supervisord samples are dropped into its ``conf.d/`` as an operator would; the
tests talk to it through ``supervisorctl`` (as an operator types it) and its XML-RPC API
(cheap enough to poll).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import xmlrpc.client
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
from supervisor.xmlrpc import SupervisorTransport

from tests.e2e.harness import Harness, Process, clean_env, program, wait_until

MAIN_CONFIG = """\
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
class Supervisord:
    """One running supervisord; ``program`` is the name its methods ask about by default."""

    harness: Harness
    process: Process
    config: Path
    socket: Path
    program: str

    @property
    def root(self) -> Path:
        return self.config.parent

    @property
    def log(self) -> Path:
        return self.root / "supervisord.log"

    def ctl(self, *args: str) -> str:
        """``supervisorctl`` through the unix socket of our config, as an operator types it."""
        done = self.harness.run(
            [program("supervisorctl"), "-c", str(self.config), *args], clean_env(), ok=False
        )
        return done.stdout

    def info(self, name: str | None = None) -> dict[str, Any]:
        """supervisord's view of a program (statename, pid, exitstatus) over XML-RPC."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        try:
            proxy = xmlrpc.client.ServerProxy("http://localhost", transport=transport)
            info = proxy.supervisor.getProcessInfo(name or self.program)
            assert isinstance(info, dict)
            return info
        except OSError:  # not listening yet
            return {}
        finally:
            transport.close()

    def programs(self) -> dict[str, dict[str, Any]]:
        """supervisord's view of every program and event listener, by process name."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        try:
            proxy = xmlrpc.client.ServerProxy("http://localhost", transport=transport)
            infos = proxy.supervisor.getAllProcessInfo()
            assert isinstance(infos, list)
            return {info["name"]: info for info in infos}
        except OSError:  # not listening yet
            return {}
        finally:
            transport.close()

    def wait_state(
        self, state: str, timeout: float = 10.0, name: str | None = None
    ) -> dict[str, Any]:
        def in_state() -> dict[str, Any] | None:
            info = self.info(name)
            return info if info.get("statename") == state else None

        return wait_until(
            in_state,
            timeout=timeout,
            what=f"{name or self.program} to be {state} under supervisord",
            detail=self.tail,
        )

    def status(self, name: str | None = None) -> list[str]:
        """The fields of ``supervisorctl status NAME``: name, state, details."""
        return self.ctl("status", name or self.program).split()

    def log_lines(self, pattern: str) -> list[str]:
        text = self.log.read_text() if self.log.exists() else ""
        return [line for line in text.splitlines() if re.search(pattern, line)]

    def tail(self) -> str:
        return (
            f"{self.process.tail()}\n--- supervisord.log ---\n"
            f"{self.log.read_text() if self.log.exists() else ''}"
        )


@contextlib.contextmanager
def running_supervisord(
    harness: Harness, root: Path, programs: Mapping[str, str], program_name: str
) -> Iterator[Supervisord]:
    """supervisord with ``programs`` (file name -> text) in its conf.d, stopped (with
    everything it runs) on the way out."""
    (root / "conf.d").mkdir(parents=True)
    for name, text in programs.items():
        (root / "conf.d" / name).write_text(text)
    # A unix socket path must stay under ~100 bytes; pytest's tmp_path may not.
    socket_dir = Path(tempfile.mkdtemp(prefix="fleet-sv-"))
    socket = socket_dir / "sv.sock"
    config = root / "supervisord.conf"
    config.write_text(MAIN_CONFIG.format(root=root, socket=socket))
    process = harness.start("supervisord", [program("supervisord"), "-c", str(config)], clean_env())
    harness.logs.append(root / "supervisord.log")
    try:
        yield Supervisord(harness, process, config, socket, program_name)
    finally:
        # SIGTERM: supervisord stops its programs first (each within its stopwaitsecs),
        # then itself.
        process.stop(timeout=30)
        shutil.rmtree(socket_dir, ignore_errors=True)
