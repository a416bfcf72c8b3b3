"""``fleetnode`` commands run in process, through ``execute`` (what ``main`` runs), with the
HTTP transport, the wall clock and the random source chosen by the test."""

from __future__ import annotations

import io
import logging
import math
import random
from collections.abc import Awaitable, Callable

import attrs
import httpx
import trio

from agent import logs
from agent.__main__ import build_parser, execute
from agent.facts import FactsSource, gather_facts
from agent.runtime import InThread, Runtime, WallClock
from agent.state import State
from agent.statedir import StateStore
from tests.support.fake_gateway import ENROLLMENT_CODE, FakeGateway, virtual_wall_clock


@attrs.frozen
class Outcome:
    code: int | None  # None: still running when the time was up
    stdout: str
    stderr: str  # prompts and the log lines, in the format and level the command asked for


Cli = Callable[..., Awaitable[Outcome]]


async def in_place(work: Callable[[], None]) -> None:
    """Blocking work run on the event loop: on the autojump clock, virtual time would race
    on while a real thread works (a save would seem to take hours)."""
    work()


async def run_command(
    store: StateStore,
    transport: httpx.AsyncBaseTransport | None,
    *argv: str,
    stdin: str = "",
    seed: int = 7,
    wall_clock: WallClock = virtual_wall_clock,
    seconds: float = math.inf,
    in_thread: InThread = in_place,
    node_facts: FactsSource = gather_facts,
) -> Outcome:
    """``fleetnode --state-dir STORE ARGV...`` for at most ``seconds`` (of virtual time under
    ``autojump_clock``); ``transport`` None means real sockets; saves run in place unless
    ``in_thread`` says otherwise; ``node_facts`` is where the daemon's facts come from."""
    args = build_parser().parse_args(["--state-dir", str(store.directory), *argv])
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handler = logs.make_handler(err, args.log_format)
    handler.setLevel(args.log_level.upper())
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    runtime = Runtime(
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        transport=transport,
        wall_clock=wall_clock,
        rng=random.Random(seed),
        in_thread=in_thread,
        node_facts=node_facts,
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
