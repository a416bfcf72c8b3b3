"""What the Trio fault runs of real agents share: an agent run as ``fleetnode run`` runs it
(many in one process), the warning httpx's cancelled requests leave behind, and collecting
it while the test's filter holds."""

from __future__ import annotations

import gc
import io

import httpx
import trio
import trio.testing

from agent.daemon import RunOptions, run_node
from agent.locked import open_locked_state
from agent.runtime import Runtime
from agent.statedir import StateStore

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


async def run_agent(
    store: StateStore,
    transport: httpx.AsyncBaseTransport,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One agent, as ``fleetnode run`` runs it (the checks, the lock, ``run_node``), on the
    real clock, until cancelled: the signals belong to the process, which runs many."""
    runtime = Runtime(
        stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO(), transport=transport
    )
    with open_locked_state(store, api_key_required=True) as node:
        await run_node(node, RunOptions(), runtime, handle_signals=False, task_status=task_status)
