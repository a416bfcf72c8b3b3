"""The signal watcher task: SIGINT or SIGTERM cancels the daemon's scope (SPEC 5.7)."""

from __future__ import annotations

import logging
import signal

import trio

logger = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def watch_signals(
    scope: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Cancel ``scope`` at the first shutdown signal; shutdown is cancellation."""
    with trio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:
        task_status.started()
        async for signum in signals:
            logger.info("received %s, shutting down", signal.Signals(signum).name)
            scope.cancel()
            return
