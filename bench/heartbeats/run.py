"""One benchmark run against a seeded database: the phases, in order, and what each measured.

1. start ``fleet-gateway serve`` (a subprocess, so its CPU is not the generator's; with
   ``processes`` > 1, that many replicas sharing one port with ``--reuse-port``);
2. the handshake sample: some seeded nodes run the real ed25519 handshake over HTTP
   and use the session the gateway minted (its CPU per handshake is measured);
3. warm-up: one heartbeat per node (``laps`` of them with several replicas: each caches
   the sessions it meets), so every session is resolved and cached and every
   node has a ``last_seen_at``. ``steady`` (open loop) spreads those heartbeats over the
   debounce window before the measured phase, in an order that leaves the nodes' last
   writes at different ages, as in a fleet that has been running: had they all been
   written at once, one later lap would have every node write at once. ``pass`` sends
   them as fast as possible (closed loop);
4. the measured heartbeat phase (open loop at a rate, or closed loop as fast as
   possible), with PostgreSQL's counters, /metrics and /proc CPU read on both sides;
5. the ceilings, same generator, mode and connections: ``GET /healthz`` of the gateway,
   then the reference (``bench.reference``: the minimal aiohttp handler of the same
   heartbeat, as many processes as the gateway) serving the same tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from bench.heartbeats import gateway_proc as gp
from bench.heartbeats import loadgen
from bench.heartbeats.calls import handshake
from bench.heartbeats.cold import run_cold_paths
from bench.heartbeats.database import BenchDatabase, PgCounters
from bench.heartbeats.phases import Load, Measurement, measure_cpu, measured_phase, profile_path
from bench.heartbeats.seed import Seeded, SeededNode
from fleetwire.durations import parse_duration

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
    processes: int = 1  # gateway replicas on one port (--reuse-port)
    generator: str = "python"  # closed loop: "wrk" or "python"
    loop: str = "asyncio"  # the event loop the reference runs (the gateway's)
    cold_paths: int = 0  # calls of each cold path, on a fresh gateway at the end (0: none)

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    def load(self, tokens_file: Path) -> Load:
        generator = self.generator if self.rate is None else "python"
        return Load(self.rate, self.connections, self.duration_seconds, generator, tokens_file)

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
    ceiling: loadgen.PhaseResult | None  # GET /healthz of the gateway
    reference: loadgen.PhaseResult | None  # the same heartbeats against bench.reference
    pg_before: PgCounters
    pg_after: PgCounters
    own_reads: int  # our statistics reads between the two, each one commit
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    cpu_heartbeat: dict[str, float]
    cpu_ceiling: dict[str, float]
    cpu_reference: dict[str, float]
    cpu_handshakes: dict[str, float]
    cold_paths: list[dict[str, Any]]
    rss_after_warmup_mb: float
    rss_after_heartbeats_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    gateway_log: str


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


@contextlib.contextmanager
def tokens_file(tokens: Sequence[str]) -> Any:
    """The bearer tokens, one a line, for wrk and the reference (removed afterwards)."""
    with tempfile.NamedTemporaryFile("w", prefix="bench-tokens-", suffix=".txt") as out:
        out.write("\n".join(tokens) + "\n")
        out.flush()
        yield Path(out.name)


async def _warm_up(
    settings: Settings, gateway: gp.Gateway, heartbeats: loadgen.HeartbeatRequests, warmup: str
) -> loadgen.PhaseResult | None:
    nodes = len(heartbeats)
    if warmup == "steady" and settings.rate is not None:
        span = max(parse_duration(settings.last_seen_debounce), nodes / settings.rate)
        due, order = staggered_warmup(nodes, span)
        return await loadgen.run_open(
            gateway.host,
            gateway.port,
            heartbeats.in_order(order),
            target="heartbeat",
            connections=settings.connections,
            rate=nodes / span,
            duration_seconds=span,
            due_seconds=due,
        )
    if warmup == "none":
        return None
    # Each replica caches the sessions it meets, and the kernel picks the replica of a
    # connection: with 2 replicas, 6 laps leave a node uncached in one with odds 1/64.
    laps = 1 if settings.processes == 1 else 6
    return await loadgen.run_closed(
        gateway.host,
        gateway.port,
        heartbeats,
        target="heartbeat",
        connections=settings.connections,
        total=nodes * laps,
    )


@contextlib.asynccontextmanager
async def _opened(settings: Settings, db: BenchDatabase, log_path: Path) -> AsyncIterator[Any]:
    async with (
        gp.open_gateway(db.url, settings.gateway_flags(), log_path, settings.processes) as gateway,
        aiohttp.ClientSession() as http,
    ):
        if settings.nice is not None:
            gp.renice(settings.nice, gateway.pid, db.postmaster_pid(), *gateway.pids[1:])
        yield gateway, http


async def _reference(
    settings: Settings, tokens: Path, postmaster: int, log_path: Path, load: Load
) -> Measurement:
    """The same heartbeats against the reference ceiling (as many processes)."""
    command = gp.reference_command(tokens, settings.loop)
    async with gp.open_servers(command, log_path, settings.processes) as reference:
        if settings.nice is not None:
            gp.renice(settings.nice, reference.pid, postmaster, *reference.pids[1:])
        requests = loadgen.HeartbeatRequests(reference.host, reference.port, _read(tokens))
        return await measured_phase(
            load, reference, postmaster, requests, "heartbeat",
            profile_path(settings.profile, "reference"),
        )  # fmt: skip


def _read(tokens: Path) -> list[str]:
    return tokens.read_text(encoding="utf-8").split()


async def run_benchmark(
    settings: Settings,
    seeded: Seeded,
    db: BenchDatabase,
    log_path: Path,
    *,
    warmup: str = "pass",
    admin_token: str = "",
) -> Measured:
    tokens = [node.session_token for node in seeded.nodes]
    postmaster = db.postmaster_pid()
    async with _opened(settings, db, log_path) as (gateway, http):
        handshakes = await measure_cpu(
            gateway.pids, postmaster,
            _handshake_sample(http, gateway.base_url, seeded.nodes, tokens),
        )  # fmt: skip
        heartbeats = loadgen.HeartbeatRequests(gateway.host, gateway.port, tokens)
        warm = await _warm_up(settings, gateway, heartbeats, warmup)
        rss_after_warmup, _ = gp.rss_mb(gateway.pid)
        with tokens_file(tokens) as tokens_path:
            load = settings.load(tokens_path)
            pg_before, reads_before = await asyncio.to_thread(db.settled_counters)
            metrics_before = await gp.scrape(http, gateway)
            beat = await measured_phase(
                load, gateway, postmaster, heartbeats, "heartbeat", settings.profile
            )
            rss_after_beats, _ = gp.rss_mb(gateway.pid)
            pg_after, reads_after = await asyncio.to_thread(db.settled_counters)
            # After PostgreSQL's counters settled: a group commit still in flight when the
            # load stopped is then counted by both (the writer counts once it committed).
            metrics_after = await gp.scrape(http, gateway)
            ceiling = reference = None
            if settings.ceiling:
                healthz = loadgen.healthz_request(gateway.host, gateway.port)
                ceiling = await measured_phase(
                    load, gateway, postmaster, healthz, "healthz",
                    profile_path(settings.profile, "ceiling"),
                )  # fmt: skip
            rss_end, rss_peak = gp.rss_mb(gateway.pid)
            if settings.ceiling:
                reference_log = log_path.with_suffix(".reference.log")
                reference = await _reference(settings, tokens_path, postmaster, reference_log, load)
    cold: list[dict[str, Any]] = []
    if settings.cold_paths:
        cold = await run_cold_paths(
            seeded, tokens, db.url, settings.gateway_flags(), admin_token, postmaster,
            log_path.with_suffix(".cold.log"), settings.cold_paths, settings.connections,
            settings.nice,
        )  # fmt: skip
    return Measured(
        handshakes=handshakes.value,
        handshake_seconds=handshakes.seconds,
        warmup=warm,
        heartbeat=beat.phase,
        ceiling=ceiling.phase if ceiling else None,
        reference=reference.phase if reference else None,
        pg_before=pg_before,
        pg_after=pg_after,
        own_reads=reads_after - reads_before,
        metrics_before=metrics_before,
        metrics_after=metrics_after,
        cpu_heartbeat=beat.cpu,
        cpu_ceiling=ceiling.cpu if ceiling else {},
        cpu_reference=reference.cpu if reference else {},
        cpu_handshakes=handshakes.cpu,
        cold_paths=cold,
        rss_after_warmup_mb=rss_after_warmup,
        rss_after_heartbeats_mb=rss_after_beats,
        rss_end_mb=rss_end,
        rss_peak_mb=rss_peak,
        gateway_log=str(log_path),
    )
