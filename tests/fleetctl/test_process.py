"""fleetctl as a real process: Ctrl-C ends `events --follow` with exit 0 and no traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

TOKEN = "fleetadm_0123abcd_" + "A" * 43


def test_sigint_ends_a_follow_with_exit_0_and_no_traceback() -> None:
    """SIGINT to `fleetctl events --follow`, while it waits to poll a gateway that is down
    again, exits 0 quietly; the failed poll was reported on stderr first."""
    # Bound but not listening: connections are refused, and no other process can take the port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "FLEET_ADMIN_TOKEN": TOKEN,
            "FLEET_SERVER_URL": f"http://127.0.0.1:{port}",
        }
        with subprocess.Popen(
            [sys.executable, "-m", "fleetctl", "events", "--follow"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stderr is not None
            first = process.stderr.readline()  # waits for the first poll's report
            process.send_signal(signal.SIGINT)
            out, rest = process.communicate(timeout=10)
    assert first == (
        f"fleetctl: unavailable: cannot reach http://127.0.0.1:{port}: ConnectError "
        "(retrying in 2s)\n"
    )
    assert process.returncode == 0
    assert out == ""
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
