"""One offline-benchmark run against a seeded database: the phases, in order.

1. ``fleet-gateway serve`` (a subprocess) with the gateway's default debounce and
   --offline-after;
2. warm-up: one heartbeat per node, spread over the debounce window, so every node is
   ONLINE with last writes of different ages, as in a fleet that has been running;
3. steady: every node heartbeats (open loop) for ``steady_seconds``; measured: gateway
   and PostgreSQL CPU per heartbeat, UPDATE statements per heartbeat and their mean time
   (pg_stat_statements, read at once), the gateway's own counters, and what the offline
   scan and the gauge refresh cost meanwhile;
4. drop (only when the gateway records events): ``drop`` nodes spread over the fleet stop
   at once, the others go on beating at the same per-node interval, and PostgreSQL is
   polled every ``POLL_SECONDS`` for OFFLINE events until every stopped node has one (or
   ``drop_limit_seconds``); each event's lag is the poll that first saw it minus the
   moment its node crossed --offline-after;
5. the EXPLAIN (ANALYZE, BUFFERS) of the gauge query as the run left the table, and
   again after VACUUM ANALYZE.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import attrs

from bench.heartbeats import gateway_proc as gp
from bench.heartbeats import loadgen
from bench.heartbeats.database import BenchDatabase, PgCounters
from bench.heartbeats.run import staggered_warmup
from bench.heartbeats.seed import Seeded
from bench.offline import watch

POLL_SECONDS = 0.2
CHUNK_SECONDS = 10.0  # the drop phase's heartbeats run in chunks, so it can end early


@attrs.frozen
class Settings:
    nodes: int
    drop: int
    rate: float  # heartbeats per second offered by the whole fleet
    steady_seconds: float
    connections: int
    last_seen_debounce_seconds: float
    offline_after_seconds: float
    gateway_flags: tuple[str, ...]
    nice: int | None = None

    @property
    def drop_limit_seconds(self) -> float:
        """Every stopped node crosses --offline-after within it of the stop; the SPEC
        allows 30 s to record it; one chunk of slack."""
        return self.offline_after_seconds + 30.0 + CHUNK_SECONDS


@attrs.frozen
class Steady:
    phase: loadgen.PhaseResult
    cpu: dict[str, float]
    pg_before: PgCounters
    pg_after: PgCounters
    scans: watch.ScanCounters
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]


@attrs.frozen
class Drop:
    stopped: int
    started_at: float  # epoch seconds
    last_crossing_at: float  # epoch seconds: the last stopped node crosses --offline-after
    recorded: tuple[watch.Recorded, ...]  # OFFLINE events of stopped nodes
    false_offline: int  # OFFLINE events of nodes that kept beating
    online_events: int  # ONLINE events meanwhile (a node that flapped)
    scans: watch.ScanCounters
    heartbeats: tuple[loadgen.PhaseResult, ...]


@attrs.frozen
class Measured:
    records_events: bool
    warmup: loadgen.PhaseResult
    steady: Steady
    drop: Drop | None
    explain_live: str | None
    explain_vacuumed: str | None


def doomed_indices(nodes: int, drop: int) -> list[int]:
    """``drop`` node indices spread evenly over the fleet (stopped together)."""
    return sorted({i * nodes // drop for i in range(drop)}) if drop else []


async def _steady(
    settings: Settings,
    db: BenchDatabase,
    gateway: gp.Gateway,
    http: aiohttp.ClientSession,
    heartbeats: loadgen.RequestFor,
) -> Steady:
    postmaster = db.postmaster_pid()
    pg_before = await asyncio.to_thread(db.counters)
    scans_before = await asyncio.to_thread(watch.scan_counters, db.url)
    metrics_before = await gp.scrape(http, gateway)
    cpu_before, started = gp.cpu_snapshot(gateway.pid, postmaster), time.monotonic()
    phase = await loadgen.run_open(
        gateway.host, gateway.port, heartbeats, target="heartbeat",
        connections=settings.connections, rate=settings.rate,
        duration_seconds=settings.steady_seconds,
    )  # fmt: skip
    cpu = gp.cpu_percent(
        cpu_before, gp.cpu_snapshot(gateway.pid, postmaster), time.monotonic() - started
    )
    metrics_after = await gp.scrape(http, gateway)
    pg_after = await asyncio.to_thread(db.counters)
    scans_after = await asyncio.to_thread(watch.scan_counters, db.url)
    return Steady(
        phase, cpu, pg_before, pg_after, scans_after.minus(scans_before), metrics_before,
        metrics_after,
    )  # fmt: skip


async def _drop(
    settings: Settings,
    db: BenchDatabase,
    gateway: gp.Gateway,
    seeded: Seeded,
) -> Drop:
    doomed = doomed_indices(settings.nodes, settings.drop)
    gone = set(doomed)
    live = [i for i in range(settings.nodes) if i not in gone]
    doomed_ids = {seeded.nodes[i].fleet_node_id for i in doomed}
    tokens = [seeded.nodes[i].session_token for i in live]
    live_rate = settings.rate * len(live) / settings.nodes  # same interval per node
    cursor = first_id = await asyncio.to_thread(watch.newest_event_id, db.url)
    scans_before = await asyncio.to_thread(watch.scan_counters, db.url)
    started_at = time.time()
    recorded: list[watch.Recorded] = []
    false_offline = 0
    done = asyncio.Event()

    async def poll() -> None:
        nonlocal cursor, false_offline
        while not done.is_set():
            new = await asyncio.to_thread(watch.new_offline_events, db.url, cursor, time.time())
            for event in new:
                cursor = max(cursor, event.event_id)
                if event.fleet_node_id in doomed_ids:
                    recorded.append(event)
                else:
                    false_offline += 1
            if len(recorded) >= len(doomed_ids):
                done.set()
            else:
                await asyncio.sleep(POLL_SECONDS)

    chunks: list[loadgen.PhaseResult] = []
    requests = loadgen.HeartbeatRequests(gateway.host, gateway.port, tokens)
    async with asyncio.TaskGroup() as tasks:
        poller = tasks.create_task(poll())
        while not done.is_set() and time.time() - started_at < settings.drop_limit_seconds:
            sent = sum(chunk.sent for chunk in chunks)
            chunk = await loadgen.run_open(
                gateway.host, gateway.port, _offset(requests, sent),
                target="heartbeat", connections=settings.connections, rate=live_rate,
                duration_seconds=CHUNK_SECONDS,
            )  # fmt: skip
            chunks.append(chunk)
        done.set()
        poller.cancel()
    scans_after = await asyncio.to_thread(watch.scan_counters, db.url)
    crossing = await asyncio.to_thread(
        watch.last_crossing, db.url, sorted(doomed_ids), settings.offline_after_seconds
    )
    online = await asyncio.to_thread(watch.online_events_since, db.url, first_id)
    return Drop(
        stopped=len(doomed_ids), started_at=started_at, last_crossing_at=crossing,
        recorded=tuple(recorded), false_offline=false_offline, online_events=online,
        scans=scans_after.minus(scans_before), heartbeats=tuple(chunks),
    )  # fmt: skip


def _offset(requests: loadgen.HeartbeatRequests, sent: int) -> loadgen.RequestFor:
    """A chunk's requests continue the node order after the ``sent`` requests before it
    (counted, not computed from the rate: a rounded shift skipped a node now and then,
    which then missed a heartbeat and was rightly recorded OFFLINE)."""
    return lambda number: requests(number + sent)


async def run_offline(
    settings: Settings, seeded: Seeded, db: BenchDatabase, log_path: Path
) -> Measured:
    tokens = [node.session_token for node in seeded.nodes]
    async with (
        gp.open_gateway(db.url, settings.gateway_flags, log_path) as gateway,
        aiohttp.ClientSession() as http,
    ):
        if settings.nice is not None:
            gp.renice(settings.nice, gateway.pid, db.postmaster_pid())
        records_events = await asyncio.to_thread(watch.has_events, db.url)
        heartbeats = loadgen.HeartbeatRequests(gateway.host, gateway.port, tokens)
        span = max(settings.last_seen_debounce_seconds, len(tokens) / settings.rate)
        due, order = staggered_warmup(len(tokens), span)
        warm = await loadgen.run_open(
            gateway.host, gateway.port, heartbeats.in_order(order), target="heartbeat",
            connections=settings.connections, rate=len(tokens) / span, duration_seconds=span,
            due_seconds=due,
        )  # fmt: skip
        steady = await _steady(settings, db, gateway, http, heartbeats)
        drop = None
        explain_live = explain_vacuumed = None
        if records_events:
            if settings.drop:
                drop = await _drop(settings, db, gateway, seeded)
            explain_live = await asyncio.to_thread(watch.explain_gauges, db.url)
            await asyncio.to_thread(watch.vacuum_analyze, db.url)
            explain_vacuumed = await asyncio.to_thread(watch.explain_gauges, db.url)
    return Measured(records_events, warm, steady, drop, explain_live, explain_vacuumed)


def lags(recorded: Sequence[watch.Recorded]) -> list[float]:
    """Seconds from each node's crossing of --offline-after to the poll that saw its event."""
    return sorted(max(0.0, event.seen_at - event.occurred_at) for event in recorded)
