"""The closed loop in C: wrk (``apt-get install -y wrk``) with ``heartbeat.lua``.

The Python generator (``loadgen``) costs 25-100 µs per request, as much as the servers it
measures once they are fast, on a machine with 2 cores. wrk costs a few µs, so with it the
closed loop measures the server, not the generator. It is not a project dependency: the
benchmark falls back to the Python generator where ``wrk`` is not on PATH.

wrk keeps a latency histogram, not every latency, and counts answers with a status over 399
without telling them apart: the phase's ``statuses`` holds 200 for the others (the servers
answer nothing else below 400) and 0 for those.
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import shutil
from pathlib import Path

from bench.heartbeats.loadgen import HEARTBEAT_PATH, PhaseResult

SCRIPT = Path(__file__).with_name("heartbeat.lua")
# Longer than any answer of a run that keeps up (wrk's default of 2 s would count slow
# answers of a write-through run as timeouts rather than latency).
TIMEOUT_SECONDS = 30
HEALTHZ = "/healthz"


def available() -> bool:
    return shutil.which("wrk") is not None


async def run_wrk(
    host: str,
    port: int,
    tokens_file: Path,
    *,
    target: str,
    connections: int,
    duration_seconds: float,
    threads: int = 1,
) -> PhaseResult:
    """A closed loop of ``duration_seconds`` over ``connections`` connections: heartbeats
    rotating over the tokens of ``tokens_file`` (target ``heartbeat``) or GET /healthz."""
    path = HEALTHZ if target == "healthz" else HEARTBEAT_PATH
    threads = max(1, min(threads, connections))
    argv = [
        "wrk", "-t", str(threads), "-c", str(connections),
        "-d", f"{max(1, math.ceil(duration_seconds))}s", "--timeout", f"{TIMEOUT_SECONDS}s",
        "-s", str(SCRIPT), f"http://{host}:{port}", "--", str(tokens_file), path, str(threads),
    ]  # fmt: skip
    children_before = _children_cpu_seconds()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    wrk_cpu = _children_cpu_seconds() - children_before
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')}")
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk printed no summary: {out.decode(errors='replace')[-500:]}")
    summary = json.loads(lines[-1])
    errors = summary["errors"]
    requests, refused = int(summary["requests"]), int(errors["status"])
    lost = int(errors["connect"]) + int(errors["read"]) + int(errors["write"])
    latency = summary["latency_us"]
    statuses = {200: requests - refused} | ({0: refused} if refused else {})
    return PhaseResult(
        mode="closed",
        target=target,
        connections=connections,
        offered_rate=None,
        sent=requests + int(errors["timeout"]) + lost,
        completed=requests,
        statuses=statuses,
        failures=int(errors["timeout"]) + lost,
        wall_seconds=int(summary["duration_us"]) / 1e6,
        latencies=[],
        generator_cpu_seconds=wrk_cpu,
        quantiles={
            0.5: latency["p50"] / 1e6,
            0.9: latency["p90"] / 1e6,
            0.99: latency["p99"] / 1e6,
            0.999: latency["p99.9"] / 1e6,
            1.0: latency["max"] / 1e6,
        },
        generator="wrk",
    )


def _children_cpu_seconds() -> float:
    """CPU of the children this process reaped (wrk, once it exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
