"""``fleetnode watchdog`` as a real process on pipes, as supervisord runs it: only the protocol
on stdout, logs on stderr, supervisord's URL from the environment or the flag."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.fake_supervisord import FakeSupervisord, event, serve_fake_supervisord

FLEETNODE = [sys.executable, "-m", "agent"]
TIMEOUT_SECONDS = 20.0


def start_watchdog(
    state_dir: Path, *argv: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    environ.update(env or {})
    return subprocess.Popen(
        [*FLEETNODE, "--state-dir", str(state_dir), "watchdog", "--program", "fleetnode", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
    )


def read_exactly(proc: subprocess.Popen[bytes], size: int) -> bytes:
    assert proc.stdout is not None
    data = b""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while len(data) < size:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no answer from the watchdog; got {data!r}"
        chunk = os.read(proc.stdout.fileno(), size - len(data))
        assert chunk, f"the watchdog closed stdout; got {data!r}"
        data += chunk
    return data


def tick(proc: subprocess.Popen[bytes], serial: int) -> None:
    """One TICK_5, as supervisord sends it, once the watchdog said READY."""
    assert proc.stdin is not None
    assert read_exactly(proc, 6) == b"READY\n"
    proc.stdin.write(event("TICK_5", serial))
    proc.stdin.flush()
    assert read_exactly(proc, 11) == b"RESULT 2\nOK"


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    """Close stdin (supervisord went away): the watchdog exits; its code and its stderr."""
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.close()
    code = proc.wait(timeout=TIMEOUT_SECONDS)
    assert proc.stdout is not None
    rest = proc.stdout.read()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert rest == b"READY\n", rest  # nothing but the protocol on stdout
    return code, stderr


def test_watchdog_restarts_through_the_url_supervisord_gives_it(tmp_path: Path) -> None:
    """Run with SUPERVISOR_SERVER_URL (as supervisord starts a listener) and --failures 2, with
    no daemon in the state directory: the second failed tick restarts the program."""
    fake = FakeSupervisord()
    with serve_fake_supervisord(fake) as url:
        proc = start_watchdog(
            tmp_path / "state", "--failures", "2", env={"SUPERVISOR_SERVER_URL": url}
        )
        try:
            tick(proc, 1)
            assert fake.restarts() == 0
            tick(proc, 2)
            assert fake.methods()[-3:] == [
                "supervisor.signalProcess",
                "supervisor.stopProcess",
                "supervisor.startProcess",
            ]
        finally:
            code, stderr = finish(proc)
    assert code == 0
    text = stderr.decode()
    assert "restarting fleetnode (pid 1000): no daemon running (no state directory" in text
    assert "Traceback" not in text


def test_the_flag_wins_over_the_environment(tmp_path: Path) -> None:
    """--supervisor-url is used even when SUPERVISOR_SERVER_URL names something else."""
    fake = FakeSupervisord()
    with serve_fake_supervisord(fake) as url:
        proc = start_watchdog(
            tmp_path / "state",
            "--supervisor-url",
            url,
            "--failures",
            "1",
            env={"SUPERVISOR_SERVER_URL": "unix:///nonexistent/supervisor.sock"},
        )
        try:
            tick(proc, 1)
        finally:
            code, _ = finish(proc)
    assert code == 0
    assert fake.restarts() == 1


def test_without_a_supervisord_url_the_watchdog_exits_78(tmp_path: Path) -> None:
    """Outside supervisord and without --supervisor-url there is nothing to restart with."""
    proc = start_watchdog(tmp_path / "state")
    _, stderr = proc.communicate(timeout=TIMEOUT_SECONDS)
    assert proc.returncode == 78
    assert b"SUPERVISOR_SERVER_URL" in stderr and b"--supervisor-url" in stderr
