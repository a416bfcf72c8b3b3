"""The unattended rollout, end to end: the shipped deploy/rollout/fleetnode-rollout.sh, run
unmodified for 20 hosts at once (separate state directories, real processes) against a real
gateway with one pre-approved code of 20 uses, each handing its daemon to one real
supervisord. The script takes every path from its environment, so the test points it at
temporary directories and skips the package install (FLEETNODE_INSTALL=0: this venv is the
"installed" agent); the file is otherwise the one cloud-init runs (tests/deploy checks the
user-data embeds it verbatim).
"""

from __future__ import annotations

import configparser
import getpass
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.e2e.actors import now, wait_online_since
from tests.e2e.conftest import Fleet
from tests.e2e.harness import BIN, Harness, Process, clean_env, program, wait_until
from tests.e2e.supervisord import Supervisord, running_supervisord

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPT = DEPLOY / "rollout" / "fleetnode-rollout.sh"
SUPERVISORD_SAMPLE = DEPLOY / "supervisord" / "fleetnode.conf"
SITE_KEYS = ("command", "user", "stdout_logfile", "stderr_logfile")  # the host's paths, names
NODES = 20
ROLLOUT_SECONDS = 180.0


@pytest.fixture
def supervisord(fleet: Fleet) -> Iterator[Supervisord]:
    """One supervisord for every host of the test: each host's script adds its program."""
    harness = fleet.harness
    with running_supervisord(harness, harness.path("supervisor"), {}, "fleetnode") as found:
        wait_until(lambda: found.socket.exists(), what="supervisord to listen", detail=found.tail)
        yield found


@attrs.frozen
class Host:
    name: str
    state_dir: Path
    code_file: Path
    log_dir: Path


def rollout(
    harness: Harness, fleet: Fleet, sv: Supervisord, host: Host, code: str, watchdog: bool
) -> Process:
    """The script as cloud-init runs it: the code on stdin, the rest in the environment."""
    env = clean_env(
        FLEET_SERVER_URL=fleet.gateway.url,
        FLEETNODE_NAME=host.name,
        FLEETNODE_USER=getpass.getuser(),
        FLEETNODE_INSTALL="0",
        FLEETNODE_PREFIX=str(BIN.parent),
        FLEETNODE_STATE_DIR=str(host.state_dir),
        FLEETNODE_CODE_FILE=str(host.code_file),
        FLEETNODE_LOG_DIR=str(host.log_dir),
        FLEETNODE_ENROLL_TIMEOUT="2m",
        FLEETNODE_PROGRAM=host.name,
        FLEETNODE_WATCHDOG="1" if watchdog else "0",
        SUPERVISOR_CONF_DIR=str(sv.root / "conf.d"),
        SUPERVISORCTL=f"{program('supervisorctl')} -c {sv.config}",
    )
    harness.watch_state(host.state_dir)
    harness.logs.append(host.log_dir / f"{host.name}.log")
    process = harness.start(f"rollout-{host.name}", ["sh", str(SCRIPT)], env, stdin=subprocess.PIPE)
    stdin = process.popen.stdin
    assert stdin is not None
    stdin.write(f"{code}\n".encode())
    stdin.close()
    return process


def make_host(harness: Harness, number: int) -> Host:
    name = f"rollout-{number:02d}"
    return Host(
        name,
        harness.path(f"hosts/{name}/state"),
        harness.path(f"hosts/{name}/etc/enrollment-code"),
        harness.path(f"hosts/{name}/log"),
    )


def program_settings(conf: Path, kind: str = "program") -> dict[str, str]:
    """The [program:*] (or [eventlistener:*]) settings of a supervisord file, without the
    host-specific ones: what the script writes must behave as
    deploy/supervisord/fleetnode.conf does."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(conf.read_text())
    (section,) = [name for name in parser.sections() if name.startswith(f"{kind}:")]
    return {k: v for k, v in parser[section].items() if k not in SITE_KEYS}


def listed(fleet: Fleet) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in fleet.operator.nodes()}


def test_twenty_hosts_roll_out_with_one_code_of_twenty_uses(
    fleet: Fleet, supervisord: Supervisord
) -> None:
    """Twenty runs of the rollout script at once, one 20-use pre-approved code: every host
    enrolls without a prompt, its daemon runs under supervisord and is ONLINE, its code file
    is gone; a 21st host is refused with a clear message and gets nothing; the code lists as
    used up 20/20, and revoking it leaves the enrolled nodes heartbeating; no secret appears
    in any log (checked at teardown)."""
    harness = fleet.harness
    created = fleet.operator.ctl("create-code", "--pre-approve", "--uses", "20", "--ttl", "1h")
    code = harness.secret(created.stdout, "pre-approved enrollment code")
    hosts = [make_host(harness, n) for n in range(1, NODES + 1)]
    # The first host also gets the watchdog (20 listeners would only cost CI time).
    runs = [
        rollout(harness, fleet, supervisord, host, code, watchdog=host is hosts[0])
        for host in hosts
    ]
    for host, run in zip(hosts, runs, strict=True):
        assert run.wait_exit(timeout=ROLLOUT_SECONDS) == 0, run.tail()
        assert "enrolled and handed to supervisord" in run.text()
        assert not host.code_file.exists()
        state = json.loads((host.state_dir / "state.json").read_text())
        assert state["api_key"] and state["session_token"] and state["name"] == host.name

    def all_running() -> dict[str, dict[str, Any]] | None:
        programs = supervisord.programs()
        names = [h.name for h in hosts] + [f"{hosts[0].name}-watchdog"]
        running = [n for n in names if programs.get(n, {}).get("statename") == "RUNNING"]
        return programs if len(running) == len(names) else None

    programs = wait_until(
        all_running,
        timeout=60,
        what="20 fleetnode programs and a watchdog RUNNING",
        detail=lambda: "",
    )
    assert f"{hosts[1].name}-watchdog" not in programs
    written = supervisord.root / "conf.d" / f"{hosts[0].name}.conf"
    assert program_settings(written) == program_settings(SUPERVISORD_SAMPLE)
    assert program_settings(written, "eventlistener") == (
        program_settings(SUPERVISORD_SAMPLE, "eventlistener")
    )

    def all_online() -> dict[str, dict[str, Any]] | None:
        nodes = listed(fleet)
        online = [n for n in nodes.values() if n.get("connectivity") == "CONNECTIVITY_ONLINE"]
        return nodes if len(online) == NODES else None

    nodes = wait_until(all_online, timeout=60, what="20 nodes ONLINE", detail=lambda: "")
    assert set(nodes) == {h.name for h in hosts}
    assert {n["enrollmentStatus"] for n in nodes.values()} == {
        "FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED"
    }

    extra = make_host(harness, NODES + 1)
    refused = rollout(harness, fleet, supervisord, extra, code, watchdog=True)
    assert refused.wait_exit(timeout=60) == 77, refused.tail()
    text = refused.text()
    assert "rejected the enrollment code" in text and "used up" in text, text
    assert "fleetnode enroll failed (exit 77)" in text
    assert not (extra.state_dir / "state.json").exists()
    assert not (supervisord.root / "conf.d" / f"{extra.name}.conf").exists()
    assert extra.name not in listed(fleet)

    codes = json.loads(fleet.operator.ctl("codes", "--all", "--json").stdout)
    (summary,) = codes["enrollmentCodes"]
    assert (summary["uses"], summary["maxUses"], summary["preApproved"], summary["state"]) == (
        20,
        20,
        True,
        "ENROLLMENT_CODE_STATE_USED_UP",
    )
    assert json.loads(fleet.operator.ctl("codes", "--json").stdout) == {"enrollmentCodes": []}

    # Revoking the (leaked, say) code leaves the nodes it enrolled alone: they keep beating.
    revoked_at = now()
    fleet.operator.ctl("revoke-code", summary["pendingEnrollmentId"])
    codes = json.loads(fleet.operator.ctl("codes", "--all", "--json").stdout)
    assert codes["enrollmentCodes"][0]["state"] == "ENROLLMENT_CODE_STATE_REVOKED"
    first = int(nodes[hosts[0].name]["fleetNodeId"])
    wait_online_since(fleet.operator, first, revoked_at, timeout=20)
