"""One benchmark run against a seeded database: the phases, in order, and what each measured.

1. start ``fleet-gateway serve`` (a subprocess, so its CPU is not the generator's);
2. the handshake sample: some seeded nodes run the real ed25519 handshake over HTTP
   and use the session the gateway minted;
3. warm-up: one heartbeat per node, so every session is resolved and cached and every
   node has a ``last_seen_at``. ``steady`` (open loop) spreads those heartbeats over the
   debounce window before the measured phase, in an order that leaves the nodes' last
   writes at different ages, as in a fleet that has been running: had they all been
   written at once, one later lap would have every node write at once. ``pass`` sends
   them as fast as possible (closed loop);
4. the measured heartbeat phase (open loop at a rate, or closed loop as fast as
   possible), with PostgreSQL's counters, /metrics and /proc CPU read on both sides;
5. the ceiling: the same generator, mode and connections against ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import nacl.signing

from bench.heartbeats import gateway_proc as gp
from bench.heartbeats import loadgen
from bench.heartbeats.database import BenchDatabase, PgCounters
from bench.heartbeats.seed import Seeded, SeededNode
from fleetwire import procedures as p
from fleetwire.durations import parse_duration
from fleetwire.identity import auth_message

HANDSHAKES_IN_FLIGHT = 16
HANDSHAKE_TIMEOUT_SECONDS = 60.0


@attrs.frozen
class Settings:
    nodes: int
    rate: float | None  # None: closed loop, as fast as possible
    duration_seconds: float
    connections: int
    last_seen_debounce: str  # as the gateway flag spells it
    flush_interval: str | None
    handshake_sample: int
    ceiling: bool = True
    profile: Path | None = None  # py-spy raw output of the gateway during the heartbeats
    nice: int | None = None  # niceness for the gateway, PostgreSQL and the generator

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    def gateway_flags(self) -> list[str]:
        flags = [
            "--last-seen-debounce", self.last_seen_debounce,
            # Set-up may enroll through the API, and the per-node limit is not what
            # is measured: both limits far above anything this run offers.
            "--auth-rate", "100000", "--auth-burst", "100000",
            "--node-heartbeat-rate", "100000",
        ]  # fmt: skip
        if self.flush_interval is not None:
            flags += ["--flush-interval", self.flush_interval]
        return flags


@attrs.frozen
class Measured:
    """Everything a run measured, before it is summarised."""

    handshakes: int
    handshake_seconds: float
    warmup: loadgen.PhaseResult | None
    heartbeat: loadgen.PhaseResult
    ceiling: loadgen.PhaseResult | None
    pg_before: PgCounters
    pg_after: PgCounters
    own_reads: int  # our statistics reads between the two, each one commit
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    cpu_heartbeat: dict[str, float]
    cpu_ceiling: dict[str, float]
    rss_after_warmup_mb: float
    rss_after_heartbeats_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    gateway_log: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, str]) -> dict[str, Any]:
    async with http.post(url, json=body) as resp:
        answer: dict[str, Any] = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"{url.rsplit('/', 1)[-1]} answered {resp.status}: {answer}")
        return answer


async def handshake(http: aiohttp.ClientSession, base_url: str, node: SeededNode) -> str:
    """A real node handshake over HTTP: Begin, sign the challenge, Complete."""
    assert node.api_key is not None and node.identity_seed is not None
    key = nacl.signing.SigningKey(node.identity_seed)
    begin = await _post(
        http,
        base_url + p.BEGIN_AUTH_HANDSHAKE.path,
        {"apiKey": node.api_key, "identityPubkey": _b64(bytes(key.verify_key))},
    )
    challenge = base64.b64decode(begin["challenge"])
    signature = key.sign(auth_message(challenge)).signature
    done = await _post(
        http,
        base_url + p.COMPLETE_AUTH_HANDSHAKE.path,
        {"challenge": _b64(challenge), "signature": _b64(signature)},
    )
    token: str = done["sessionToken"]
    return token


async def _handshake_sample(
    http: aiohttp.ClientSession, base_url: str, nodes: Sequence[SeededNode], tokens: list[str]
) -> int:
    """Replace the sampled nodes' tokens with sessions the gateway mints now."""
    sample = [i for i, node in enumerate(nodes) if node.api_key is not None]
    limiter = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)

    async def one(i: int) -> None:
        async with limiter:
            tokens[i] = await handshake(http, base_url, nodes[i])

    async with asyncio.timeout(HANDSHAKE_TIMEOUT_SECONDS), asyncio.TaskGroup() as tasks:
        for i in sample:
            tasks.create_task(one(i))
    return len(sample)


async def _phase(
    settings: Settings, gateway: gp.Gateway, request_for: loadgen.RequestFor, target: str
) -> loadgen.PhaseResult:
    if settings.rate is None:
        return await loadgen.run_closed(
            gateway.host,
            gateway.port,
            request_for,
            target=target,
            connections=settings.connections,
            duration_seconds=settings.duration_seconds,
        )
    return await loadgen.run_open(
        gateway.host,
        gateway.port,
        request_for,
        target=target,
        connections=settings.connections,
        rate=settings.rate,
        duration_seconds=settings.duration_seconds,
    )


async def _measure_cpu(
    gateway: gp.Gateway, postmaster: int, phase: Awaitable[loadgen.PhaseResult]
) -> tuple[loadgen.PhaseResult, dict[str, float]]:
    """The phase's result and who used how much CPU meanwhile."""
    before, started = gp.cpu_snapshot(gateway.pid, postmaster), time.monotonic()
    result = await phase
    after = gp.cpu_snapshot(gateway.pid, postmaster)
    return result, gp.cpu_percent(before, after, time.monotonic() - started)


@contextlib.asynccontextmanager
async def _profiled(pid: int, out: Path | None, seconds: float) -> AsyncIterator[None]:
    """py-spy (bench/README.md: installed by hand, never a project dependency) sampling
    the gateway for ``seconds``; nothing when ``out`` is None."""
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


def staggered_warmup(nodes: int, span_seconds: float) -> tuple[list[float], list[int]]:
    """When each node's warm-up heartbeat is due (ascending) and whose it is.

    Node ``i`` is the ``i``-th to beat in each lap of the measured phase. Its warm-up
    heartbeat is due at ``span * (1 - f_i)`` before the warm-up ends, where ``f_i`` runs
    through [0, 1) evenly and independently of ``i`` (golden-ratio steps), so when the
    measured phase starts the nodes' last writes have ages spread over the span (the
    debounce window), not one age shared by all."""
    golden = 0.6180339887498949
    offsets = [span_seconds * ((i * golden) % 1.0) for i in range(nodes)]
    order = sorted(range(nodes), key=offsets.__getitem__)
    return [offsets[i] for i in order], order


async def run_benchmark(
    settings: Settings, seeded: Seeded, db: BenchDatabase, log_path: Path, *, warmup: str = "pass"
) -> Measured:
    tokens = [node.session_token for node in seeded.nodes]
    postmaster = db.postmaster_pid()
    async with (
        gp.open_gateway(db.url, settings.gateway_flags(), log_path) as gateway,
        aiohttp.ClientSession() as http,
    ):
        if settings.nice is not None:
            gp.renice(settings.nice, gateway.pid, postmaster)
        started = time.monotonic()
        handshakes = await _handshake_sample(http, gateway.base_url, seeded.nodes, tokens)
        handshake_seconds = time.monotonic() - started
        heartbeats = loadgen.HeartbeatRequests(gateway.host, gateway.port, tokens)
        warm = None
        if warmup == "steady" and settings.rate is not None:
            span = max(parse_duration(settings.last_seen_debounce), len(tokens) / settings.rate)
            due, order = staggered_warmup(len(tokens), span)
            warm = await loadgen.run_open(
                gateway.host,
                gateway.port,
                heartbeats.in_order(order),
                target="heartbeat",
                connections=settings.connections,
                rate=len(tokens) / span,
                duration_seconds=span,
                due_seconds=due,
            )
        elif warmup != "none":
            warm = await loadgen.run_closed(
                gateway.host,
                gateway.port,
                heartbeats,
                target="heartbeat",
                connections=settings.connections,
                total=len(tokens),
            )
        rss_after_warmup, _ = gp.rss_mb(gateway.pid)
        pg_before, reads_before = await asyncio.to_thread(db.settled_counters)
        metrics_before = await gp.scrape(http, gateway)
        async with _profiled(gateway.pid, settings.profile, settings.duration_seconds):
            beat, cpu_beat = await _measure_cpu(
                gateway, postmaster, _phase(settings, gateway, heartbeats, "heartbeat")
            )
        metrics_after = await gp.scrape(http, gateway)
        rss_after_beats, _ = gp.rss_mb(gateway.pid)
        pg_after, reads_after = await asyncio.to_thread(db.settled_counters)
        ceiling: loadgen.PhaseResult | None = None
        cpu_ceiling: dict[str, float] = {}
        if settings.ceiling:
            healthz = loadgen.healthz_request(gateway.host, gateway.port)
            profile = settings.profile
            ceiling_profile = (
                profile.with_name(f"{profile.stem}.ceiling{profile.suffix}") if profile else None
            )
            async with _profiled(gateway.pid, ceiling_profile, settings.duration_seconds):
                ceiling, cpu_ceiling = await _measure_cpu(
                    gateway, postmaster, _phase(settings, gateway, healthz, "healthz")
                )
        rss_end, rss_peak = gp.rss_mb(gateway.pid)
    return Measured(
        handshakes=handshakes,
        handshake_seconds=handshake_seconds,
        warmup=warm,
        heartbeat=beat,
        ceiling=ceiling,
        pg_before=pg_before,
        pg_after=pg_after,
        own_reads=reads_after - reads_before,
        metrics_before=metrics_before,
        metrics_after=metrics_after,
        cpu_heartbeat=cpu_beat,
        cpu_ceiling=cpu_ceiling,
        rss_after_warmup_mb=rss_after_warmup,
        rss_after_heartbeats_mb=rss_after_beats,
        rss_end_mb=rss_end,
        rss_peak_mb=rss_peak,
        gateway_log=str(log_path),
    )
