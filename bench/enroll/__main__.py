"""``python -m bench.enroll``: N nodes enroll at once with one pre-approved code of N uses,
through the agent's own enroll code path, against a real gateway and its own PostgreSQL.

Scenarios: ``addresses`` (each node from its own loopback address, 127.1.x.y: a fleet on a
flat network) and ``nat`` (every node from one address, as behind a NAT: the gateway's
per-address auth rate limit, default 5/s burst 20, paces all of them). Each scenario gets a
fresh cluster and gateway. Loopback only; every node gives up by itself after its
``--enroll-timeout``, so a run is bounded. The only module here that reads the command line,
configures logging or starts an event loop.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import trio

from bench.enroll.fleet import enroll_fleet
from bench.enroll.gateway import open_gateway
from bench.enroll.report import summarise, table
from bench.heartbeats import database
from bench.heartbeats.gateway_proc import cpu_percent, cpu_snapshot
from fleetwire.durations import parse_duration

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
CREATE_CODE = "/fleetnodeadmin.v1.FleetNodeAdminService/CreateEnrollmentCode"
DEFAULT_AUTH = (5.0, 20)  # the gateway's --auth-rate / --auth-burst defaults
NAT_ADDRESS = "127.2.0.1"


def source_address(scenario: str, nodes: int) -> tuple[Any, int]:
    if scenario == "nat":
        return (lambda _index: NAT_ADDRESS), 1
    return (lambda index: f"127.1.{index // 250}.{index % 250 + 1}"), nodes


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.enroll", description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes (1000)")
    parser.add_argument(
        "--scenario", choices=("addresses", "nat", "both"), default="both", help="(both)"
    )
    parser.add_argument(
        "--enroll-timeout",
        default="10m",
        help="each node's fleetnode enroll --enroll-timeout (10m, the agent's default)",
    )
    parser.add_argument("--auth-rate", help="the gateway's --auth-rate (its default: 5)")
    parser.add_argument("--auth-burst", help="the gateway's --auth-burst (its default: 20)")
    parser.add_argument("--json", type=Path, help="the JSON report (default bench/results/)")
    return parser


def create_code(url: str, admin_token: str, uses: int) -> str:
    """A pre-approved code of ``uses`` uses, through the admin API as fleetctl makes one."""
    answer = httpx.post(
        url + CREATE_CODE,
        json={"preApproved": True, "maxUses": uses, "ttlSeconds": 86400},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["code"])


def run_scenario(
    args: argparse.Namespace, scenario: str, work: Path, log_prefix: Path
) -> dict[str, Any]:
    flags = ["--log-level", "warning"]
    if args.auth_rate:
        flags += ["--auth-rate", args.auth_rate]
    if args.auth_burst:
        flags += ["--auth-burst", args.auth_burst]
    auth = (
        float(args.auth_rate or DEFAULT_AUTH[0]),
        int(args.auth_burst or DEFAULT_AUTH[1]),
    )
    addresses, count = source_address(scenario, args.nodes)
    with database.open_database(fsync=True) as db:
        db.gateway_cli("create-org", "bench")
        token = db.gateway_cli("create-admin-token", "--org", "bench").strip()
        with open_gateway(db.url, flags, Path(f"{log_prefix}-gateway-{scenario}.log")) as gateway:
            code_file = work / f"code-{scenario}"
            code_file.write_text(create_code(gateway.url, token, args.nodes) + "\n")
            code_file.chmod(0o600)
            print(f"{scenario}: {args.nodes} nodes enrolling from {count} address(es)...",
                  file=sys.stderr, flush=True)  # fmt: skip
            before = cpu_snapshot(gateway.pid, db.postmaster_pid())
            run = trio.run(
                lambda: enroll_fleet(
                    nodes=args.nodes,
                    server_url=gateway.url,
                    code_file=code_file,
                    state_root=work / f"nodes-{scenario}",
                    source_address=addresses,
                    enroll_timeout_seconds=_duration(args.enroll_timeout),
                )
            )
            cpu = cpu_percent(
                before,
                cpu_snapshot(gateway.pid, db.postmaster_pid()),
                max((r.finished_seconds for r in run.results), default=0.0),
            )
            metrics = gateway.metrics()
        rows = database._execute(
            db.url,
            "SELECT (SELECT count(*) FROM fleet_nodes WHERE deleted_at IS NULL"
            " AND status = 'CONFIRMED'), (SELECT max(uses) FROM pending_enrollments)",
        )
    live, uses = rows[0]
    facts = {"live_confirmed_nodes": int(str(live)), "code_uses": int(str(uses))}
    return summarise(scenario, args.nodes, count, run, metrics, facts, auth) | {
        "cpu_percent_of_one_core": cpu
    }


def reproduce(args: argparse.Namespace) -> str:
    words = [".venv/bin/python", "-m", "bench.enroll", "--nodes", str(args.nodes)]
    words += ["--scenario", args.scenario, "--enroll-timeout", args.enroll_timeout]
    for flag in ("auth_rate", "auth_burst"):
        if getattr(args, flag):
            words += ["--" + flag.replace("_", "-"), getattr(args, flag)]
    return shlex.join(words)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    _duration(args.enroll_timeout)
    # Retries are counted from the answers; the agent's warning per retry goes to a file.
    started = datetime.datetime.now(datetime.UTC)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    logging.basicConfig(
        filename=RESULTS_DIR / f"enroll-{stamp}-agents.log",
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    scenarios = ["addresses", "nat"] if args.scenario == "both" else [args.scenario]
    summaries = []
    with tempfile.TemporaryDirectory(prefix="bench-enroll-") as tmp:
        for scenario in scenarios:
            log_prefix = RESULTS_DIR / f"enroll-{stamp}"
            summaries.append(run_scenario(args, scenario, Path(tmp), log_prefix))
            print(table(summaries[-1]) + "\n", flush=True)
    report = {
        "command": reproduce(args),
        "started_at": started.isoformat(),
        "machine_note": "shared 2-core machine (other engineers' work running)",
        "scenarios": summaries,
    }
    out = args.json or RESULTS_DIR / f"enroll-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"command: {report['command']}\nreport: {out}")
    sys.exit(0 if all(s["gave_up"] == 0 and s["seconds_until_all_enrolled"] for s in summaries)
             else 1)  # fmt: skip


if __name__ == "__main__":
    main()
