"""What commands get from the outside world, injected so tests can replace each piece."""

from __future__ import annotations

import datetime
import random
from collections.abc import Awaitable, Callable
from typing import TextIO

import attrs
import httpx
import trio

from agent.facts import FactsSource, gather_facts


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


WallClock = Callable[[], datetime.datetime]
# Runs blocking work (a state save) in a worker thread: ``trio.to_thread.run_sync``, which
# a cancellation waits for. Tests on Trio's autojump clock run it in place, since that
# clock moves on while a thread works, as if the work took hours.
InThread = Callable[[Callable[[], None]], Awaitable[None]]


@attrs.frozen
class Runtime:
    """Streams, the HTTP transport seam, the wall clock, the random source, the way
    blocking work leaves the event loop, and where the node's facts come from."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    transport: httpx.AsyncBaseTransport | None = None
    wall_clock: WallClock = utc_now
    rng: random.Random = attrs.field(factory=random.SystemRandom)
    in_thread: InThread = trio.to_thread.run_sync
    node_facts: FactsSource = gather_facts
