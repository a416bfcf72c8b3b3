"""What commands get from the outside world, injected so tests can replace each piece."""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from typing import TextIO

import attrs
import httpx


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


WallClock = Callable[[], datetime.datetime]


@attrs.frozen
class Runtime:
    """Streams, the HTTP transport seam, the wall clock and the random source."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    transport: httpx.AsyncBaseTransport | None = None
    wall_clock: WallClock = utc_now
    rng: random.Random = attrs.field(factory=random.SystemRandom)
