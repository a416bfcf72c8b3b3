"""``python -m bench.heartbeats``: seed N nodes, load a real gateway with heartbeats, report.

The only module of the generator that starts event loops (the seeding workers' and
the measurement's) and reads the command line. Loopback only; every phase is bounded
in count and time, and the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import gateway
from bench.heartbeats import database, report, seed, wrk
from bench.heartbeats.run import Settings, run_benchmark
from fleetwire.durations import parse_duration

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
QUICK_NODES = 5000
QUICK_DURATION = "15s"
DEFAULT_INTERVAL_SECONDS = 30.0  # the gateway's default --heartbeat-interval
MAX_NODES = 1_000_000
OPEN_CONNECTIONS = 1000
CLOSED_CONNECTIONS = 64
MAX_DURATION_SECONDS = 600.0


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(
            f"use a duration above 0 and at most {MAX_DURATION_SECONDS:g}s"
        )
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 1 <= value <= MAX_NODES:
        raise argparse.ArgumentTypeError(f"use a number from 1 to {MAX_NODES}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}") from None
    if not 0 < value <= 1_000_000:
        raise argparse.ArgumentTypeError("use a rate above 0 and at most 1000000 per second")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.heartbeats",
        description="Heartbeat load against a real fleet-gateway subprocess and its own "
        "PostgreSQL, next to a /healthz ceiling from the same run.",
    )
    parser.add_argument(
        "--nodes", type=_positive_int, help="simulated nodes (default 10000; --quick 5000)"
    )
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--rate", type=_rate, help="open loop: heartbeats per second offered (default nodes/30)"
    )
    load.add_argument(
        "--max", action="store_true", help="closed loop: as fast as the gateway answers"
    )
    parser.add_argument(
        "--duration",
        type=_duration,
        help="measured phase length, e.g. 60s (default 60s; --quick 15s)",
    )
    parser.add_argument(
        "--connections",
        type=_positive_int,
        help=f"keep-alive connections (open loop {OPEN_CONNECTIONS}: each node of a fleet holds "
        "one, so heartbeats waiting for a group commit must not hold back the others; "
        f"closed loop {CLOSED_CONNECTIONS})",
    )
    parser.add_argument(
        "--last-seen-debounce",
        default="60s",
        help="passed to the gateway (60s; 0 writes every heartbeat)",
    )
    parser.add_argument("--flush-interval", help="passed to the gateway (its default: 20ms)")
    parser.add_argument(
        "--seed", choices=("bulk", "services"), default="bulk", help="how nodes are enrolled (bulk)"
    )
    parser.add_argument(
        "--seed-processes", type=_positive_int, default=2, help="seeding processes (2)"
    )
    parser.add_argument(
        "--handshake-sample",
        type=int,
        default=256,
        help="nodes that run the real handshake over HTTP (256)",
    )
    parser.add_argument(
        "--fsync", choices=("on", "off"), default="on", help="PostgreSQL fsync while measuring (on)"
    )
    parser.add_argument(
        "--warmup",
        choices=("steady", "pass", "none"),
        help="one heartbeat per node before measuring: spread over the debounce window "
        "(steady, the open loop's default), as fast as possible (pass, the default of --max "
        "and --quick) or none (cold: sessions not yet cached)",
    )
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip the ceilings (/healthz, the reference)"
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        help="gateway replicas sharing one port with --reuse-port (1); the reference runs as many",
    )
    parser.add_argument(
        "--cold-paths",
        type=int,
        default=0,
        metavar="N",
        help="at the end, on a fresh gateway: N cache-miss heartbeats, handshakes, "
        "CreateEnrollmentCode and Register calls, each measured (0: skip)",
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="closed loop's generator: wrk (a few µs per request; apt-get install -y wrk), "
        "python (25-100 µs), auto: wrk when on PATH (the open loop is always python)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_NODES} nodes, {QUICK_DURATION}"
    )
    parser.add_argument(
        "--stats-quiet",
        type=_duration,
        default=database.SETTLE_QUIET_SECONDS,
        help="how long PostgreSQL's counters must stay unchanged before they are read "
        "(11s: they lag up to 10 s; shorter makes write counts inexact)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        help="niceness of gateway, PostgreSQL and generator, e.g. -10 on a shared machine (root)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the gateway during the heartbeats (raw stacks to this file)",
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the JSON report (default bench/results/)"
    )
    return parser  # fmt: skip


def _settings(args: argparse.Namespace) -> Settings:
    nodes = args.nodes or (QUICK_NODES if args.quick else 10_000)
    duration = args.duration or parse_duration(QUICK_DURATION if args.quick else "60s")
    rate = None if args.max else (args.rate or round(nodes / DEFAULT_INTERVAL_SECONDS, 1))
    parse_duration(args.last_seen_debounce)  # a bad value fails here, not in the gateway
    return Settings(
        nodes=nodes,
        rate=rate,
        duration_seconds=duration,
        connections=args.connections or (CLOSED_CONNECTIONS if args.max else OPEN_CONNECTIONS),
        last_seen_debounce=args.last_seen_debounce,
        flush_interval=args.flush_interval,
        handshake_sample=max(0, min(args.handshake_sample, nodes)),
        ceiling=not args.no_ceiling,
        profile=args.profile,
        nice=args.nice,
        processes=args.processes,
        cold_paths=max(0, args.cold_paths),
        generator=_generator(args.generator),
        loop=event_loop(),
    )


def _generator(choice: str) -> str:
    if choice == "auto":
        return "wrk" if wrk.available() else "python"
    if choice == "wrk" and not wrk.available():
        raise ValueError("--generator wrk: wrk is not on PATH (apt-get install -y wrk)")
    return choice


def event_loop() -> str:
    """The event loop the gateway runs in this environment (the reference runs the same)."""
    return "asyncio"


def warmup_of(args: argparse.Namespace) -> str:
    return str(args.warmup or ("pass" if args.max or args.quick else "steady"))


def reproduce_command(args: argparse.Namespace, settings: Settings) -> str:
    """The exact command, every value resolved (presets spelled out)."""
    words = [".venv/bin/python", "-m", "bench.heartbeats", "--nodes", str(settings.nodes)]
    words += ["--max"] if settings.rate is None else ["--rate", f"{settings.rate:g}"]
    words += [
        "--duration",
        f"{settings.duration_seconds:g}s",
        "--connections",
        str(settings.connections),
    ]
    words += ["--last-seen-debounce", settings.last_seen_debounce]
    if settings.flush_interval:
        words += ["--flush-interval", settings.flush_interval]
    words += [
        "--seed",
        args.seed,
        "--handshake-sample",
        str(settings.handshake_sample),
        "--fsync",
        args.fsync,
    ]
    if settings.nice is not None:
        words += ["--nice", str(settings.nice)]
    if args.stats_quiet != database.SETTLE_QUIET_SECONDS:
        words += ["--stats-quiet", f"{args.stats_quiet:g}s"]
    words += ["--warmup", warmup_of(args), *["--no-ceiling"] * args.no_ceiling]
    words += ["--processes", str(settings.processes)]
    if settings.cold_paths:
        words += ["--cold-paths", str(settings.cold_paths)]
    if settings.rate is None:
        words += ["--generator", settings.generator]
    return shlex.join(words)  # fmt: skip


def product_revision() -> str:
    """The checkout's commit, with ``+dirty`` when product code differs from it (other
    work may be in progress in the same tree: the figures are for what ran)."""
    git = ["git", "-C", str(Path(gateway.__file__).resolve().parents[1])]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "gateway", "fleetwire"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _seed_worker(job: seed.SeedJob) -> list[seed.SeededNode]:
    """One seeding process's work (bulk: plain SQL; services: the product's runtime)."""
    if job.bulk:
        return seed.seed_bulk_slice(job)
    return asyncio.run(seed.seed_slice(job))


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:
        _stderr(f"bench: {exc}")
        return 2
    command = reproduce_command(args, settings)
    started_at = datetime.datetime.now(datetime.UTC)
    revision = product_revision()
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    json_path = (
        args.json or RESULTS_DIR / f"heartbeats-{settings.mode}-{settings.nodes}-{stamp}.json"
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    log_path = json_path.with_suffix(".gateway.log")
    load_before = os.getloadavg()
    try:
        with database.open_database(
            fsync=args.fsync == "on", settle_quiet_seconds=args.stats_quiet
        ) as db:
            _stderr(f"bench: seeding {settings.nodes} nodes ({args.seed})")
            token = seed.create_admin_token(db)
            seeded = seed.seed_parallel(
                db.url, token, settings.nodes, args.seed_processes, _seed_worker,
                bulk=args.seed == "bulk", sample=settings.handshake_sample,
            )  # fmt: skip
            db.prepare_for_measurement()
            _stderr(f"bench: seeded in {seeded.seconds:.1f} s; measuring ({command})")
            measured = asyncio.run(
                run_benchmark(
                    settings, seeded, db, log_path, warmup=warmup_of(args), admin_token=token
                )
            )
    except KeyboardInterrupt:
        _stderr("bench: interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last boundary: a message, not a traceback
        _stderr(f"bench: failed: {type(exc).__name__}: {exc}")
        return 1
    result = report.build(
        command, settings, seeded, args.seed, args.fsync == "on", measured, load_before, started_at
    )
    result["product_revision"] = revision
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report.table(result, str(json_path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
