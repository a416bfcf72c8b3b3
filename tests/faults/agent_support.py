"""Running ``fleetnode`` commands in process, in virtual time, against the fake gateway of
tests/agent (the same entry point ``main`` uses: ``execute``), with a chosen wall clock."""

from __future__ import annotations

import datetime
import gc
import io
import logging
import random
from collections.abc import Callable

import attrs
import httpx
import trio
import trio.testing

from agent import logs
from agent.__main__ import build_parser, execute
from agent.runtime import Runtime
from agent.state import State, StateStore
from tests.agent.conftest import ENROLLMENT_CODE, FakeGateway, virtual_wall_clock


@attrs.frozen
class Outcome:
    code: int | None  # None: still running when the time was up
    stdout: str
    stderr: str  # prompts and log lines (text format, info level)


async def run_command(
    store: StateStore,
    gateway: FakeGateway,
    *argv: str,
    seconds: float = float("inf"),
    wall_clock: Callable[[], datetime.datetime] = virtual_wall_clock,
    transport: httpx.AsyncBaseTransport | None = None,
    stdin: str = "",
) -> Outcome:
    """``fleetnode --state-dir STORE ARGV...`` for at most ``seconds`` of virtual time."""
    args = build_parser().parse_args(["--state-dir", str(store.directory), *argv])
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handler = logs.make_handler(err, "text")
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    runtime = Runtime(
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        transport=transport or gateway.transport,
        wall_clock=wall_clock,
        rng=random.Random(11),
    )
    code: int | None = None
    try:
        with trio.move_on_after(seconds):
            code = await execute(args, store, runtime)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return Outcome(code, out.getvalue(), err.getvalue())


def secrets_seen(state: State, gateway: FakeGateway, text: str) -> list[str]:
    """Which of the node's secrets (api key, private key, every session token the fake
    issued, the enrollment code) appear in ``text``."""
    secrets = {
        "api key": state.api_key,
        "private key": state.identity_private_key,
        "enrollment code": ENROLLMENT_CODE,
    }
    secrets.update({f"session token {i}": t for i, t in enumerate(gateway.issued_tokens)})
    return [what for what, value in secrets.items() if value and value in text]


# httpx does not close its request-body async generator when a request is cancelled
# mid-send (as shutting agents down does), and Trio warns when it collects one. The
# warning is harmless (ignored outside tests); the trio fault tests ignore it and collect
# the garbage while their own filter is in force (finalize_garbage).
CANCELLED_BODY_WARNING = (
    "ignore:Async generator 'httpx._content.ByteStream.__aiter__' was garbage collected"
    ":ResourceWarning"
)


async def finalize_garbage() -> None:
    """Collect what requests cancelled mid-send left behind while Trio still runs and
    the test's warning filter holds (collected later, it would fail another test)."""
    gc.collect()
    await trio.testing.wait_all_tasks_blocked()
