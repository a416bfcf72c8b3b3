"""``python -m bench.offline``: seed N nodes, run a real gateway under heartbeats, stop some
of them at once, and report how soon and how cheaply each OFFLINE was recorded.

The only module of this benchmark that reads the command line, starts event loops and sets
the environment (``--baseline-tree`` puts another checkout first on the gateway
subprocesses' PYTHONPATH: the same run against a gateway without connectivity events).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.heartbeats import database, seed
from bench.heartbeats.__main__ import product_revision
from bench.offline import report
from bench.offline.run import Settings, run_offline
from fleetwire.durations import parse_duration

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
HIGH_LIMITS = ("--auth-rate", "100000", "--auth-burst", "100000", "--node-heartbeat-rate", "100000")


def _count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError("use a number from 0 to 1000000")
    return value


def _seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.offline",
        description="OFFLINE detection and the per-heartbeat cost of connectivity events, "
        "against a real fleet-gateway subprocess and its own PostgreSQL.",
    )
    parser.add_argument("--nodes", type=_count, default=100_000, help="fleet size (100000)")
    parser.add_argument("--drop", type=_count, default=10_000, help="nodes that stop (10000)")
    parser.add_argument(
        "--rate", type=float, help="heartbeats/s of the whole fleet (default nodes/60)"
    )
    parser.add_argument("--steady", type=_seconds, default=60.0, help="steady phase (60s)")
    parser.add_argument("--connections", type=_count, default=1000, help="connections (1000)")
    parser.add_argument("--last-seen-debounce", default="60s", help="gateway flag (60s)")
    parser.add_argument("--offline-after", default="150s", help="gateway flag (150s)")
    parser.add_argument("--heartbeat-interval", default="30s", help="gateway flag (30s)")
    parser.add_argument("--seed-processes", type=_count, default=2, help="seeding processes (2)")
    parser.add_argument("--fsync", choices=("on", "off"), default="on", help="PostgreSQL fsync")
    parser.add_argument("--nice", type=int, help="niceness of gateway, PostgreSQL, generator")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="a checkout whose gateway to run instead (e.g. the commit before events); "
        "its run has no drop phase",
    )
    parser.add_argument("--json", type=Path, help="JSON report path (default bench/results/)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    if args.drop > args.nodes and not args.baseline_tree:
        raise ValueError("--drop cannot exceed --nodes")
    flags = (
        "--last-seen-debounce", args.last_seen_debounce, "--offline-after", args.offline_after,
        "--heartbeat-interval", args.heartbeat_interval, *HIGH_LIMITS,
    )  # fmt: skip
    return Settings(
        nodes=args.nodes,
        drop=0 if args.baseline_tree else args.drop,
        rate=args.rate or round(args.nodes / 60, 1),
        steady_seconds=args.steady,
        connections=args.connections,
        last_seen_debounce_seconds=parse_duration(args.last_seen_debounce),
        offline_after_seconds=parse_duration(args.offline_after),
        gateway_flags=flags,
        nice=args.nice,
    )


def reproduce_command(args: argparse.Namespace, settings: Settings) -> str:
    words = [
        ".venv/bin/python", "-m", "bench.offline", "--nodes", str(settings.nodes),
        "--drop", str(settings.drop), "--rate", f"{settings.rate:g}",
        "--steady", f"{settings.steady_seconds:g}s", "--connections", str(settings.connections),
        "--last-seen-debounce", args.last_seen_debounce, "--offline-after", args.offline_after,
        "--heartbeat-interval", args.heartbeat_interval, "--fsync", args.fsync,
    ]  # fmt: skip
    if args.nice is not None:
        words += ["--nice", str(args.nice)]
    if args.baseline_tree:
        words += ["--baseline-tree", str(args.baseline_tree)]
    return shlex.join(words)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:
        _stderr(f"bench: {exc}")
        return 2
    if args.baseline_tree:
        # Read before the gateway's console script's own site-packages: its gateway.
        os.environ["PYTHONPATH"] = str(args.baseline_tree.resolve())
    command = reproduce_command(args, settings)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    kind = "baseline" if args.baseline_tree else "events"
    json_path = args.json or RESULTS_DIR / f"offline-{kind}-{settings.nodes}-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    log_path = json_path.with_suffix(".gateway.log")
    try:
        with database.open_database(fsync=args.fsync == "on") as db:
            _stderr(f"bench: seeding {settings.nodes} nodes")
            token = seed.create_admin_token(db)
            seeded = seed.seed_parallel(
                db.url, token, settings.nodes, args.seed_processes, seed.seed_bulk_slice
            )
            db.prepare_for_measurement()
            _stderr(f"bench: seeded in {seeded.seconds:.1f} s; measuring ({command})")
            measured = asyncio.run(run_offline(settings, seeded, db, log_path))
    except KeyboardInterrupt:
        _stderr("bench: interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last boundary: a message, not a traceback
        _stderr(f"bench: failed: {type(exc).__name__}: {exc}")
        return 1
    seeding = {"nodes": len(seeded.nodes), "seconds": round(seeded.seconds, 1)}
    result = report.build(command, settings, measured, seeding)
    result["product_revision"] = "baseline" if args.baseline_tree else product_revision()
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report.table(result, str(json_path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
