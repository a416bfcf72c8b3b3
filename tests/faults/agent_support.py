"""What the Trio fault runs of real agents share: the warning httpx's cancelled requests
leave behind, and collecting it while the test's filter holds."""

from __future__ import annotations

import gc

import trio
import trio.testing

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
