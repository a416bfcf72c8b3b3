"""One measured phase: the load (Python generator or wrk), who used how much CPU meanwhile,
and an optional py-spy profile of the server under test."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import attrs

from bench.heartbeats import gateway_proc as gp
from bench.heartbeats import loadgen, wrk

T = TypeVar("T")


@attrs.frozen
class Load:
    """How a phase offers its load."""

    rate: float | None  # None: closed loop
    connections: int
    duration_seconds: float
    generator: str  # "wrk" (closed loop only) or "python"
    tokens_file: Path | None = None  # wrk's bearer tokens


@attrs.frozen
class Timed(Generic[T]):
    value: T
    cpu: dict[str, float]  # % of one core: gateway (the server under test), postgres, ...
    seconds: float


@attrs.frozen
class Measurement:
    phase: loadgen.PhaseResult
    cpu: dict[str, float]  # % of one core: gateway (the server under test), postgres, ...


def run_load(
    load: Load, server: gp.Gateway, request_for: loadgen.RequestFor, target: str
) -> Awaitable[loadgen.PhaseResult]:
    if load.rate is not None:
        return loadgen.run_open(
            server.host,
            server.port,
            request_for,
            target=target,
            connections=load.connections,
            rate=load.rate,
            duration_seconds=load.duration_seconds,
        )
    if load.generator == "wrk":
        assert load.tokens_file is not None
        return wrk.run_wrk(
            server.host,
            server.port,
            load.tokens_file,
            target=target,
            connections=load.connections,
            duration_seconds=load.duration_seconds,
        )
    return loadgen.run_closed(
        server.host,
        server.port,
        request_for,
        target=target,
        connections=load.connections,
        duration_seconds=load.duration_seconds,
    )


async def measure_cpu(pids: Sequence[int], postmaster: int, work: Awaitable[T]) -> Timed[T]:
    """The work's result and who used how much CPU meanwhile (``pids``: the server)."""
    before, started = gp.cpu_snapshot(pids, postmaster), time.monotonic()
    result = await work
    after = gp.cpu_snapshot(pids, postmaster)
    seconds = time.monotonic() - started
    return Timed(result, gp.cpu_percent(before, after, seconds), seconds)


async def measured_phase(
    load: Load,
    server: gp.Gateway,
    postmaster: int,
    request_for: loadgen.RequestFor,
    target: str,
    profile: Path | None = None,
) -> Measurement:
    async with profiled(server.pid, profile, load.duration_seconds):
        timed = await measure_cpu(
            server.pids, postmaster, run_load(load, server, request_for, target)
        )
    return Measurement(timed.value, timed.cpu)


@contextlib.asynccontextmanager
async def profiled(pid: int, out: Path | None, seconds: float) -> AsyncIterator[None]:
    """py-spy (bench/README.md: installed by hand, never a project dependency) sampling
    ``pid`` for ``seconds``; nothing when ``out`` is None."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    proc = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
        "--rate", "200", "--nonblocking", "--format", "raw", "--output", str(out),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


def profile_path(profile: Path | None, label: str) -> Path | None:
    """``FILE`` for the heartbeats, ``FILE`` with ``.<label>`` before its suffix otherwise."""
    if profile is None or not label:
        return profile
    return profile.with_name(f"{profile.stem}.{label}{profile.suffix}")
