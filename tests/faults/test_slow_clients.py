"""Fault: slow and idle clients hold connections open against the gateway.

aiohttp starts no request handler before a request's headers are complete, and has no
header or body read timeout of its own; ``gateway.server`` bounds a connection that sends
no complete request (idle or a slowloris) with the keep-alive timeout (75 s, counted from
the connection's start or its last answer), and ``gateway.connect`` bounds reading a body
(30 s). In deployment nginx's client_header_timeout/client_body_timeout (10 s) come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from fleetwire import procedures as p
from gateway import server
from gateway.config import Config
from tests.e2e.actors import Gateway, bootstrap
from tests.e2e.harness import Harness
from tests.faults.fleet_http import (
    FLEET_AUTH_LIMITS,
    SimNode,
    enroll_nodes,
    secrets_in,
    utc_now_text,
)

pytestmark = pytest.mark.asyncio

IDLE_CONNECTIONS = 500
SLOWLORIS = 5
SLOW_BODIES = 5
HOLD_SECONDS = server.IDLE_TIMEOUT_SECONDS / 2  # the bound must not have cut them yet
BODY_DEADLINE_SECONDS = 30.0
HEADER_START = b"POST " + p.UPLOAD_HEARTBEAT.path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@contextlib.asynccontextmanager
async def serving(database_url: str, idle_timeout_seconds: float) -> AsyncIterator[int]:
    """The gateway served in process (``server.serve``) on port 0; yields the port."""
    config = Config(database_url=database_url, port=0)
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        server.serve(
            config, listening.set_result, stop=stop, idle_timeout_seconds=idle_timeout_seconds
        )
    )
    try:
        yield await asyncio.wait_for(listening, 30)
    finally:
        stop.set()
        await task


async def closed_by_server(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (EOF or reset)."""
    started = time.monotonic()
    with contextlib.suppress(ConnectionResetError):
        while await reader.read(1024):
            pass
    return time.monotonic() - started


async def test_idle_connections_and_slowloris_are_closed_after_the_idle_timeout(
    database_url: str,
) -> None:
    """A connection that sends nothing, and one dribbling its headers a byte at a time,
    are both closed by the gateway once the idle timeout has passed since they opened,
    while a normal request on another connection is answered meanwhile."""
    bound = 1.0
    async with serving(database_url, idle_timeout_seconds=bound) as port:
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_writer.write(HEADER_START)

        async def dribble() -> None:
            for byte in b"X-Padding: " + b"a" * 100:
                slow_writer.write(bytes([byte]))
                await asyncio.sleep(0.1)  # the slow client's own pace

        dribbling = asyncio.create_task(dribble())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                assert (await http.get("/healthz")).status_code == 200
            async with asyncio.timeout(10 * bound):
                idle_for, slow_for = await asyncio.gather(
                    closed_by_server(idle_reader), closed_by_server(slow_reader)
                )
            assert not dribbling.done(), "the slowloris finished its headers: test too slow"
        finally:
            dribbling.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await dribbling
            for writer in (idle_writer, slow_writer):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
        assert idle_for < 3 * bound and slow_for < 3 * bound


@attrs.frozen
class Target:
    harness: Harness
    gateway: Gateway
    node: SimNode


@pytest.fixture
def target(tmp_path: Path, database_url: str) -> Iterator[Target]:
    """A real gateway with one node holding a session; no secret may reach a log."""
    harness = Harness(tmp_path)
    try:
        gateway = Gateway(harness, database_url, "gateway", extra=FLEET_AUTH_LIMITS)
        token = bootstrap(harness, database_url, gateway)
        [node] = enroll_nodes(harness, gateway.url, token, 1, "normal", with_session=True)
        yield Target(harness, gateway, node)
    finally:
        harness.stop_all()
    leaked = harness.leaked_secrets()
    assert not leaked, "secrets in logs:\n" + "\n".join(leaked)


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def fd_limit(pid: int) -> str:
    limits = Path(f"/proc/{pid}/limits").read_text()
    found = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
    return f"soft {found.group(1)}, hard {found.group(2)}" if found else "unknown"


@pytest.mark.faults
async def test_gateway_keeps_serving_beside_idle_connections_slowloris_and_slow_bodies(
    target: Target,
) -> None:
    """With 500 idle connections, 5 clients sending headers at 1 byte/s and 5 sending a
    body at 1 byte/s, a normal heartbeat still answers within a second, every time; the
    slow bodies get `deadline_exceeded` after 30 s, the slowloris are still held."""
    port = target.gateway.port
    pid = target.gateway.proc.pid
    fds_before = open_fds(pid)
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    for _ in range(IDLE_CONNECTIONS + SLOWLORIS + SLOW_BODIES):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        readers.append(reader)
        writers.append(writer)
    slowloris = writers[IDLE_CONNECTIONS : IDLE_CONNECTIONS + SLOWLORIS]
    slow_bodies = writers[IDLE_CONNECTIONS + SLOWLORIS :]
    body_headers = (
        HEADER_START
        + b"Content-Type: application/json\r\n"
        + f"Authorization: Bearer {target.node.session_token}\r\n".encode()
        + b"Content-Length: 1000\r\n\r\n"
    )
    for writer in slowloris:
        writer.write(HEADER_START)
    for writer in slow_bodies:
        writer.write(body_headers)

    async def drip() -> None:
        while True:
            for writer in [*slowloris, *slow_bodies]:
                writer.write(b"a")
            await asyncio.sleep(1.0)  # 1 byte/s: the attack's pace

    async def body_answers() -> list[bytes]:
        started = time.monotonic()
        answers = [
            await readers[IDLE_CONNECTIONS + SLOWLORIS + i].read(4096) for i in range(SLOW_BODIES)
        ]
        assert time.monotonic() - started >= BODY_DEADLINE_SECONDS - 1
        return answers

    dripping = asyncio.create_task(drip())
    answering = asyncio.create_task(body_answers())
    latencies: list[float] = []
    fds_during = 0
    try:
        async with httpx.AsyncClient(base_url=target.gateway.url, timeout=10) as http:
            deadline = time.monotonic() + HOLD_SECONDS
            while time.monotonic() < deadline:
                started = time.monotonic()
                response = await http.post(
                    p.UPLOAD_HEARTBEAT.path,
                    json={"sentAt": utc_now_text()},
                    headers={"Authorization": f"Bearer {target.node.session_token}"},
                )
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
                fds_during = max(fds_during, open_fds(pid))
                await asyncio.sleep(1.0)  # one heartbeat a second, as a busy node would
        answers = await asyncio.wait_for(answering, 10)
        still_open = sum(
            1 for reader in readers[: IDLE_CONNECTIONS + SLOWLORIS] if not reader.at_eof()
        )
    finally:
        dripping.cancel()
        answering.cancel()
        for task in (dripping, answering):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    assert all(b" 504 " in answer and b"deadline_exceeded" in answer for answer in answers)
    assert not secrets_in(target.harness, [answer.decode(errors="replace") for answer in answers])
    assert max(latencies) < 1.0, latencies
    print(
        f"\n{IDLE_CONNECTIONS} idle + {SLOWLORIS} slowloris + {SLOW_BODIES} slow-body "
        f"connections held {HOLD_SECONDS:.0f} s: {len(latencies)} heartbeats all 200, latency "
        f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
        f"slow bodies answered 504 deadline_exceeded after {BODY_DEADLINE_SECONDS:.0f} s; "
        f"{still_open} idle/slowloris connections still open (bound: "
        f"{server.IDLE_TIMEOUT_SECONDS:.0f} s); gateway fds {fds_before} -> {fds_during}; "
        f"fd limit {fd_limit(pid)}"
    )
