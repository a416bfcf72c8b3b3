"""The cold paths (``--cold-paths N``), on a freshly started gateway after the other phases,
so that a fast cached heartbeat cannot hide a slow first one. Each is measured alone, as
the gateway's CPU µs per call and calls per second:

* ``heartbeat_cache_miss``: N nodes' heartbeats, each node once, on a gateway whose session
  cache is empty (what every heartbeat costs for a while after a restart): the session is
  read from PostgreSQL, and the heartbeat queued for the group commit, whose statement
  finds the node written within the debounce window (or writes it when it was not);
* ``handshake``: BeginAuthHandshake + CompleteAuthHandshake (an ed25519 signature over the
  challenge, checked by the gateway), N times over the nodes of the handshake sample;
* ``create_enrollment_code``: N admin calls minting a (single-use) code;
* ``register``: N Register calls with those codes and fresh identity keys.

Calls run over aiohttp with ``IN_FLIGHT`` at a time (the heartbeats over the Python
generator's connections); the generator's CPU is its own, not the gateway's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import nacl.signing

from bench.heartbeats import gateway_proc as gp
from bench.heartbeats import loadgen
from bench.heartbeats.calls import b64, handshake, post
from bench.heartbeats.phases import measure_cpu
from bench.heartbeats.seed import Seeded, SeededNode
from fleetwire import procedures as p

IN_FLIGHT = 16
TIMEOUT_SECONDS = 300.0


def _summary(
    name: str, calls: int, ok: int, seconds: float, cpu: dict[str, float]
) -> dict[str, Any]:
    gateway_seconds = cpu.get("gateway", 0.0) * seconds / 100
    return {
        "name": name,
        "calls": calls,
        "ok": ok,
        "seconds": round(seconds, 2),
        "calls_per_second": round(ok / seconds, 1) if seconds else None,
        "gateway_cpu_us_per_call": round(1e6 * gateway_seconds / ok, 1) if ok else None,
        "postgres_cpu_us_per_call": (
            round(1e6 * cpu.get("postgres", 0.0) * seconds / 100 / ok, 1) if ok else None
        ),
        "cpu_percent_of_one_core": cpu,
    }


async def _in_parallel(
    calls: int, one: Callable[[int, int], Awaitable[None]], workers: int = IN_FLIGHT
) -> int:
    """``one(i, w)`` for i in range(calls): worker w of ``workers`` makes the calls
    w, w + workers, ..., one after the other."""

    async def worker(first: int) -> None:
        for i in range(first, calls, workers):
            await one(i, first)

    async with asyncio.timeout(TIMEOUT_SECONDS), asyncio.TaskGroup() as tasks:
        for first in range(min(workers, calls)):
            tasks.create_task(worker(first))
    return calls


async def _cache_misses(
    gateway: gp.Gateway, http: aiohttp.ClientSession, tokens: Sequence[str], postmaster: int,
    connections: int,
) -> dict[str, Any]:  # fmt: skip
    before = await gp.scrape(http, gateway)
    requests = loadgen.HeartbeatRequests(gateway.host, gateway.port, list(tokens))
    timed = await measure_cpu(
        gateway.pids, postmaster,
        loadgen.run_closed(
            gateway.host, gateway.port, requests, target="heartbeat",
            connections=connections, total=len(tokens),
        ),
    )  # fmt: skip
    after = await gp.scrape(http, gateway)
    phase = timed.value
    out = _summary("heartbeat_cache_miss", phase.sent, phase.ok, phase.wall_seconds, timed.cpu)
    for name, metric in (
        ("session_cache_misses", 'fleet_gateway_session_cache_total{result="miss"}'),
        ("update_statements", "fleet_gateway_last_seen_statements_total"),
        ("rows_written", "fleet_gateway_last_seen_rows_written_total"),
    ):
        out[name] = round(after.get(metric, 0.0) - before.get(metric, 0.0))
    return out


async def _handshakes(
    gateway: gp.Gateway, http: aiohttp.ClientSession, nodes: Sequence[SeededNode], calls: int,
    postmaster: int,
) -> dict[str, Any]:  # fmt: skip
    sample = [node for node in nodes if node.api_key is not None]
    if not sample:
        return _summary("handshake", 0, 0, 0.0, {})
    # Each worker has nodes of its own and runs their handshakes in turn: a node's
    # handshakes never overlap (Begin replaces its previous challenge).
    workers = min(IN_FLIGHT, len(sample))
    own = [sample[w::workers] for w in range(workers)]
    done = 0

    async def one(i: int, worker: int) -> None:
        nonlocal done
        nodes = own[worker]
        await handshake(http, gateway.base_url, nodes[(i // workers) % len(nodes)])
        done += 1

    timed = await measure_cpu(gateway.pids, postmaster, _in_parallel(calls, one, workers))
    return _summary("handshake", calls, done, timed.seconds, timed.cpu)


async def _enrollment(
    gateway: gp.Gateway, http: aiohttp.ClientSession, admin_token: str, calls: int,
    postmaster: int,
) -> list[dict[str, Any]]:  # fmt: skip
    codes: list[str] = [""] * calls
    auth = {"Authorization": f"Bearer {admin_token}"}

    async def create(i: int, _worker: int) -> None:
        url = gateway.base_url + p.CREATE_ENROLLMENT_CODE.path
        codes[i] = (await post(http, url, {}, headers=auth))["code"]

    created = await measure_cpu(gateway.pids, postmaster, _in_parallel(calls, create))
    keys = [nacl.signing.SigningKey.generate() for _ in range(calls)]
    stamp = int(time.time())

    async def register(i: int, _worker: int) -> None:
        body = {
            "enrollmentToken": codes[i],
            "name": f"bench-cold-{stamp}-{i:07d}",
            "identityPubkey": b64(bytes(keys[i].verify_key)),
        }
        await post(http, gateway.base_url + p.REGISTER.path, body)

    registered = await measure_cpu(gateway.pids, postmaster, _in_parallel(calls, register))
    return [
        _summary("create_enrollment_code", calls, calls, created.seconds, created.cpu),
        _summary("register", calls, calls, registered.seconds, registered.cpu),
    ]


async def run_cold_paths(
    seeded: Seeded,
    tokens: Sequence[str],
    database_url: str,
    flags: Sequence[str],
    admin_token: str,
    postmaster: int,
    log_path: Path,
    calls: int,
    connections: int,
    nice: int | None,
) -> list[dict[str, Any]]:
    """Every cold path, ``calls`` times each, on a gateway started for them."""
    async with (
        gp.open_gateway(database_url, flags, log_path) as gateway,
        aiohttp.ClientSession() as http,
    ):
        if nice is not None:
            gp.renice(nice, gateway.pid, postmaster)
        out = [
            await _cache_misses(
                gateway, http, tokens[: min(calls, len(tokens))], postmaster, connections
            )
        ]
        out.append(await _handshakes(gateway, http, seeded.nodes, calls, postmaster))
        out += await _enrollment(gateway, http, admin_token, calls, postmaster)
    return out
