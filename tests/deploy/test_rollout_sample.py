"""deploy/rollout: the cloud-init user-data runs the very script the e2e test runs
(tests/e2e/test_rollout.py), so the sample and the tested file cannot drift apart."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

ROLLOUT = Path(__file__).resolve().parents[2] / "deploy" / "rollout"
SCRIPT = ROLLOUT / "fleetnode-rollout.sh"
USER_DATA = ROLLOUT / "user-data.yaml"
INSTALLED_AS = "/usr/local/sbin/fleetnode-rollout"
INDENT = " " * 6


def embedded_script(user_data: str) -> str:
    """The literal block under ``content: |`` of the write_files entry, dedented."""
    lines = user_data.splitlines(keepends=True)
    start = lines.index(f"  - path: {INSTALLED_AS}\n")
    content = next(i for i in range(start, len(lines)) if lines[i] == "    content: |\n")
    block = []
    for line in lines[content + 1 :]:
        if line.strip() and not line.startswith(INDENT):
            break
        block.append(line[len(INDENT) :] if line.strip() else "\n")
    return "".join(block)


def test_user_data_embeds_the_rollout_script_verbatim() -> None:
    """The user-data writes deploy/rollout/fleetnode-rollout.sh byte for byte and runs it,
    with the code on standard input (never in an argument)."""
    user_data = USER_DATA.read_text()
    assert user_data.startswith("#cloud-config\n")
    assert embedded_script(user_data) == SCRIPT.read_text()
    (run,) = [line for line in user_data.splitlines() if line.startswith("  - printf ")]
    assert run.endswith(f"| FLEET_SERVER_URL=https://fleet.example.com {INSTALLED_AS}")


def test_the_script_is_posix_sh_and_executable() -> None:
    """dash parses the script (no bashisms in its syntax) and it is executable."""
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")
    parsed = subprocess.run(["dash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
