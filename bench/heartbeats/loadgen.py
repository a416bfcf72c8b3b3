"""The load generator's engine: raw asyncio protocols speaking HTTP/1.1 keep-alive.

Everything per request is as cheap as Python allows, so the generator is not what
is measured: requests are pre-encoded bytes (per node: the request line and headers
with its bearer token; per millisecond: the JSON body with ``sentAt``), responses are
parsed only as far as the status code and ``Content-Length``, and the protocol
callbacks send the next request themselves (no task per request).

Two ways to offer load over ``connections`` keep-alive connections:

* open loop (``run_open``): request ``i`` is due at ``start + i / rate``; a due request
  goes out on the first idle connection, and its latency is measured from the time it
  was due, not from when it was sent, so a slow server cannot hide behind a generator
  that waited for it (no coordinated omission).
* closed loop (``run_closed``): each connection sends its next request as soon as the
  previous answer arrived, for a duration or until a number of requests was sent;
  latency is measured from the send.

Both are bounded: by count, by duration, and by ``drain_seconds`` for the answers of
requests already sent.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import time
from collections.abc import Callable, Sequence
from typing import overload

import attrs

HEARTBEAT_PATH = "/fleetnodegateway.v1.FleetNodeGatewayService/UploadHeartbeat"
# The open loop's scheduler wakes at most once per tick and then sends everything due:
# waking per request would cost the generator a core at a few thousand per second.
# A request sent up to a tick (plus the loop's timer resolution, about 1 ms) after it
# was due carries that lateness in its measured latency (conservative).
TICK_SECONDS = 0.001

RequestFor = Callable[[int], bytes]  # request number -> the bytes to send


class ProtocolError(RuntimeError):
    """The server answered something this minimal client cannot parse."""


@attrs.frozen
class PhaseResult:
    """What one phase measured. Latencies are seconds, sorted."""

    mode: str  # "open" or "closed"
    target: str  # "heartbeat" or "healthz"
    connections: int
    offered_rate: float | None  # open loop only
    sent: int
    completed: int
    statuses: dict[int, int]
    failures: int  # connections lost with a request in flight, or unanswered at the end
    wall_seconds: float  # first send to last answer
    latencies: list[float] = attrs.field(repr=False)
    generator_cpu_seconds: float
    # A generator that keeps only a histogram (wrk) reports these instead of ``latencies``:
    # seconds by fraction (0.5, 0.9, 0.99, 0.999, and 1.0 for the maximum).
    quantiles: dict[float, float] | None = None
    generator: str = "python"

    @property
    def throughput(self) -> float:
        return self.completed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def percentile(self, fraction: float) -> float | None:
        if self.quantiles is not None:
            return self.quantiles.get(fraction)
        if not self.latencies:
            return None
        index = min(len(self.latencies) - 1, max(0, round(fraction * len(self.latencies)) - 1))
        return self.latencies[index]

    @property
    def max_latency(self) -> float | None:
        if self.quantiles is not None:
            return self.quantiles.get(1.0)
        return self.latencies[-1] if self.latencies else None


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, tally: _Tally, on_answer: Callable[[_Connection, int], None]) -> None:
        self._tally = tally
        self._on_answer = on_answer
        self._buffer = bytearray()
        self._body_left: int | None = None
        self._status = 0
        self.transport: asyncio.Transport | None = None
        self.in_flight: int | None = None  # the request number awaiting its answer
        self.sent_at = 0.0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight is not None:  # its answer will never come
            self.in_flight = None
            self._tally.failures += 1
            self._tally.check_done()
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, number: int, data: bytes, now: float) -> None:
        assert self.transport is not None
        self.in_flight = number
        self.sent_at = now
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            if self._body_left is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buffer[:end]).lower()
                del buffer[: end + 4]
                self._status = int(head[9:12])
                at = head.find(b"\r\ncontent-length:")
                if at < 0:
                    raise ProtocolError("answer without Content-Length")
                stop = head.find(b"\r\n", at + 2)
                self._body_left = int(head[at + 17 : stop if stop >= 0 else None])
            if len(buffer) < self._body_left:
                return
            del buffer[: self._body_left]
            self._body_left = None
            self._on_answer(self, self._status)


class _Tally:
    """Counts of one phase; ``all_answered`` resolves once sending stopped and every
    request sent was answered or lost with its connection."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: collections.Counter[int] = collections.Counter()
        self.sent = 0
        self.completed = 0
        self.failures = 0
        self.first_send = 0.0
        self.last_answer = 0.0
        self.sending_done = False
        self.all_answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def record(self, now: float, latency: float, status: int) -> None:
        self.latencies.append(latency)
        self.statuses[status] += 1
        self.completed += 1
        self.last_answer = now

    def check_done(self) -> None:
        finished = self.sending_done and self.completed + self.failures >= self.sent
        if finished and not self.all_answered.done():
            self.all_answered.set_result(None)


async def _open_connections(
    host: str, port: int, count: int, tally: _Tally, on_answer: Callable[[_Connection, int], None]
) -> list[_Connection]:
    loop = asyncio.get_running_loop()
    conns = []
    try:
        for _ in range(count):
            _, conn = await loop.create_connection(
                lambda: _Connection(tally, on_answer), host, port
            )
            conns.append(conn)
    except BaseException:
        await _close(conns)
        raise
    return conns


async def _close(conns: list[_Connection]) -> None:
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    for conn in conns:
        await conn.closed


async def _finish(tally: _Tally, conns: list[_Connection], drain_seconds: float) -> int:
    """Stop sending and wait (bounded) for the answers in flight; how many never came."""
    tally.sending_done = True
    tally.check_done()
    try:
        async with asyncio.timeout(drain_seconds):
            await asyncio.shield(tally.all_answered)
    except TimeoutError:
        pass
    return sum(1 for conn in conns if conn.in_flight is not None)


def _result(
    tally: _Tally,
    conns: list[_Connection],
    unanswered: int,
    mode: str,
    target: str,
    rate: float | None,
    cpu_started: float,
) -> PhaseResult:
    tally.latencies.sort()
    return PhaseResult(
        mode=mode,
        target=target,
        connections=len(conns),
        offered_rate=rate,
        sent=tally.sent,
        completed=tally.completed,
        statuses=dict(sorted(tally.statuses.items())),
        failures=tally.failures + unanswered,
        wall_seconds=max(0.0, tally.last_answer - tally.first_send),
        latencies=tally.latencies,
        generator_cpu_seconds=time.process_time() - cpu_started,
    )


async def run_closed(
    host: str,
    port: int,
    request_for: RequestFor,
    *,
    target: str,
    connections: int,
    duration_seconds: float | None = None,
    total: int | None = None,
    drain_seconds: float = 30.0,
) -> PhaseResult:
    """Closed loop: every connection keeps one request in flight until ``total``
    requests were sent or ``duration_seconds`` passed (at least one bound is needed)."""
    if duration_seconds is None and total is None:
        raise ValueError("a closed loop needs a duration or a total")
    limit = total if total is not None else 1 << 62
    tally = _Tally()
    clock = time.perf_counter
    stop_at = float("inf")

    def send_next(conn: _Connection, now: float) -> None:
        if tally.sent >= limit or now >= stop_at:
            tally.sending_done = True
            tally.check_done()
            return
        number = tally.sent
        tally.sent += 1
        conn.send(number, request_for(number), now)

    def on_answer(conn: _Connection, status: int) -> None:
        now = clock()
        tally.record(now, now - conn.sent_at, status)
        conn.in_flight = None
        send_next(conn, now)

    conns = await _open_connections(host, port, connections, tally, on_answer)
    cpu_started = time.process_time()
    try:
        tally.first_send = clock()
        if duration_seconds is not None:
            stop_at = tally.first_send + duration_seconds
        for conn in conns:
            send_next(conn, tally.first_send)
        try:
            # Bounded even if answers stop coming: the duration (or a generous share
            # per request of a count-bounded phase) plus the drain.
            bound = duration_seconds if duration_seconds is not None else 1.0 + limit / 100
            async with asyncio.timeout(bound + drain_seconds):
                await asyncio.shield(tally.all_answered)
        except TimeoutError:
            pass
        stop_at = 0.0  # answers still arriving send nothing more
        unanswered = await _finish(tally, conns, drain_seconds)
        return _result(tally, conns, unanswered, "closed", target, None, cpu_started)
    finally:
        await _close(conns)


async def run_open(
    host: str,
    port: int,
    request_for: RequestFor,
    *,
    target: str,
    connections: int,
    rate: float,
    duration_seconds: float,
    due_seconds: Sequence[float] | None = None,
    drain_seconds: float = 30.0,
) -> PhaseResult:
    """Open loop: ``rate * duration_seconds`` requests, request ``i`` due at
    ``start + i / rate``, or at ``start + due_seconds[i]`` (ascending) when given;
    latency counts from the due time."""
    if due_seconds is None:
        total = max(1, int(rate * duration_seconds))
        offsets: Sequence[float] = _Uniform(rate, total)
    else:
        offsets, total = due_seconds, len(due_seconds)
    tally = _Tally()
    clock = time.perf_counter
    backlog: collections.deque[int] = collections.deque()
    idle: list[_Connection] = []
    start = 0.0

    def on_answer(conn: _Connection, status: int) -> None:
        now = clock()
        number = conn.in_flight
        assert number is not None
        tally.record(now, now - (start + offsets[number]), status)
        conn.in_flight = None
        if backlog:
            number = backlog.popleft()
            conn.send(number, request_for(number), now)
        else:
            idle.append(conn)
            tally.check_done()

    conns = await _open_connections(host, port, connections, tally, on_answer)
    idle.extend(conns)
    cpu_started = time.process_time()
    try:
        start = tally.first_send = clock()
        while tally.sent < total:
            now = clock()
            elapsed = now - start
            while tally.sent < total and offsets[tally.sent] <= elapsed:
                backlog.append(tally.sent)
                tally.sent += 1
            while backlog and idle:
                number = backlog.popleft()
                idle.pop().send(number, request_for(number), now)
            if tally.sent < total:
                next_due = start + offsets[tally.sent]
                await asyncio.sleep(max(TICK_SECONDS, next_due - clock()))
        # Requests still in the backlog go out as connections free up; the drain
        # bounds how long that may take.
        unanswered = await _finish(tally, conns, drain_seconds + len(backlog) / rate)
        unanswered += len(backlog)
        return _result(tally, conns, unanswered, "open", target, rate, cpu_started)
    finally:
        await _close(conns)


class _Uniform(Sequence[float]):
    """``i / rate`` for ``i`` in ``range(total)``, without a list."""

    def __init__(self, rate: float, total: int) -> None:
        self._rate = rate
        self._total = total

    def __len__(self) -> int:
        return self._total

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if isinstance(index, slice):
            return [i / self._rate for i in range(self._total)[index]]
        return index / self._rate


# --- the requests ------------------------------------------------------------------------------


class HeartbeatRequests:
    """Pre-encoded heartbeats: request ``i`` is node ``i % len(tokens)``'s, so every node
    beats once per ``len(tokens) / rate`` seconds, in a fixed order."""

    def __init__(self, host: str, port: int, session_tokens: list[str]) -> None:
        self._heads = [
            (
                f"POST {HEARTBEAT_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Type: application/json\r\n"
                f"Authorization: Bearer {token}\r\n"
            ).encode()
            for token in session_tokens
        ]
        self._millisecond = -1
        self._tail = b""

    def _body_tail(self) -> bytes:
        """Content-Length, blank line and body with ``sentAt`` (re-encoded once a ms)."""
        now = time.time()
        millisecond = int(now * 1000)
        if millisecond != self._millisecond:
            moment = datetime.datetime.fromtimestamp(millisecond / 1000, datetime.UTC)
            body = b'{"sentAt":"' + moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3].encode() + b'Z"}'
            self._tail = b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            self._millisecond = millisecond
        return self._tail

    def __len__(self) -> int:
        return len(self._heads)

    def __call__(self, number: int) -> bytes:
        return self._heads[number % len(self._heads)] + self._body_tail()

    def in_order(self, nodes: Sequence[int]) -> RequestFor:
        """Request ``i`` is node ``nodes[i]``'s."""
        return lambda number: self._heads[nodes[number]] + self._body_tail()


def healthz_request(host: str, port: int) -> RequestFor:
    data = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    return lambda _number: data
