"""Background tasks with an owner that watches them: nothing runs unobserved.

``watched_task`` runs a ``*_forever`` coroutine for the duration of an ``async with`` and
cancels it on the way out, waiting a bounded time. A task that dies unexpectedly (any
exception but cancellation, or returning at all) is logged once with its traceback,
counted in ``fleet_gateway_background_task_failures_total{task}``, recorded in the
:class:`TaskWatch` (``/readyz`` answers 503 while any task is dead) and its ``on_death``
runs, so its owner can fail safe (the listener's death switches the session cache off).
A dead task is not restarted: it died of a bug, and a loop of restarts would hide it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from prometheus_client import Counter

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5.0


class TaskWatch:
    """The background tasks of one gateway process that died."""

    def __init__(self, failures: Counter) -> None:
        self._failures = failures
        self._dead: set[str] = set()

    @property
    def dead(self) -> frozenset[str]:
        return frozenset(self._dead)

    def all_alive(self) -> bool:
        return not self._dead

    def started(self, name: str) -> None:
        """Export the task's failure count (at 0) from the start: alert rules on
        ``increase()`` need the series before the first failure."""
        self._failures.labels(task=name)

    def died(self, name: str) -> None:
        self._dead.add(name)
        self._failures.labels(task=name).inc()


def _nothing() -> None:
    pass


@contextlib.asynccontextmanager
async def watched_task(
    name: str,
    work: Callable[[], Coroutine[Any, Any, object]],
    watch: TaskWatch,
    *,
    on_death: Callable[[], None] = _nothing,
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``work()`` as a task named ``name`` while the block runs; see the module doc."""

    async def guarded() -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("background task %s died", name, extra={"task": name})
        else:
            logger.error("background task %s returned unexpectedly", name, extra={"task": name})
        watch.died(name)
        on_death()

    watch.started(name)
    task = asyncio.create_task(guarded(), name=f"fleet-{name}")
    try:
        yield task
    finally:
        task.cancel()
        # asyncio.wait neither raises the task's outcome nor swallows our own cancellation.
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_SECONDS)
        if not done:
            logger.warning("background task %s did not stop in %ss", name, STOP_TIMEOUT_SECONDS)
