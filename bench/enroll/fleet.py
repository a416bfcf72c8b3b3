"""The simulated fleet: N nodes, each the agent's own ``enroll`` (``agent.enroll.enroll``, the
code path of ``fleetnode enroll --code-file``: signed Register, retries with backoff until
the enroll timeout, the handshake, atomic state saves) in one Trio task, with its own state
directory, random source and HTTP transport bound to the source address the scenario gives
it. All start at once. Each transport counts the answers it got, by procedure and status.
"""

from __future__ import annotations

import collections
import io
import random
import ssl
from collections.abc import Callable
from pathlib import Path

import attrs
import httpx
import trio
import trio.testing

from agent.enroll import EnrollOptions, enroll
from agent.errors import AgentError, GatewayUnavailable
from agent.runtime import Runtime
from agent.statedir import StateStore

Tally = collections.Counter[tuple[str, str]]  # (procedure, HTTP status or "error") -> answers


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting answers (and when handshakes completed)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, tally: Tally, handshakes: list[float]
    ) -> None:
        self._inner = inner
        self._tally = tally
        self._handshakes = handshakes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        procedure = request.url.path.rsplit("/", 1)[-1]
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError:
            self._tally[(procedure, "error")] += 1
            raise
        self._tally[(procedure, str(response.status_code))] += 1
        if procedure == "CompleteAuthHandshake" and response.status_code == 200:
            self._handshakes.append(trio.current_time())
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@attrs.frozen
class NodeResult:
    index: int
    outcome: str  # "enrolled", "gave up" (69), or the error class of another failure
    finished_seconds: float  # after the start
    detail: str = ""  # an agent error's text (never a secret)


@attrs.define
class FleetRun:
    results: list[NodeResult] = attrs.Factory(list)
    tally: Tally = attrs.Factory(collections.Counter)
    handshakes_at: list[float] = attrs.Factory(list)  # seconds after the start


async def enroll_fleet(
    *,
    nodes: int,
    server_url: str,
    code_file: Path,
    state_root: Path,
    source_address: Callable[[int], str],
    enroll_timeout_seconds: float,
) -> FleetRun:
    run = FleetRun()
    completed: list[float] = []
    # One TLS context for all (the URL is plain http anyway): building one per transport
    # loads the CA bundle each time, ~20 ms of this process's one core per node, which a
    # real node pays once in its own process. The first runs spent 20 s on it.
    tls = ssl.create_default_context()
    go = trio.Event()
    start = 0.0

    async def node(index: int) -> None:
        await go.wait()
        inner = httpx.AsyncHTTPTransport(verify=tls, local_address=source_address(index))
        runtime = Runtime(
            stdin=io.StringIO(),  # a pre-approved code: enroll must never read it
            stdout=io.StringIO(),
            stderr=io.StringIO(),
            transport=CountingTransport(inner, run.tally, completed),
            rng=random.Random(index),
        )
        options = EnrollOptions(
            server_url=server_url,
            name=f"bench-{index:05d}",
            code_file=code_file,
            enroll_timeout_seconds=enroll_timeout_seconds,
        )
        outcome, detail = "enrolled", ""
        try:
            await enroll(StateStore(state_root / f"node-{index:05d}"), options, runtime)
        except GatewayUnavailable as exc:
            outcome, detail = "gave up", str(exc)
        except AgentError as exc:
            outcome, detail = type(exc).__name__, str(exc)
        run.results.append(NodeResult(index, outcome, trio.current_time() - start, detail))

    async with trio.open_nursery() as nursery:
        for index in range(nodes):
            nursery.start_soon(node, index)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        go.set()
    run.handshakes_at = sorted(moment - start for moment in completed)
    return run
