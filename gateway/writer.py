"""The last_seen write path: per-node debounce and group commit (SPEC 4.1-4.3, 4.6).

``recently_written`` answers from memory for nodes whose ``last_seen_at`` is known to
be within the debounce window (no database work at all). Everything else is queued
with ``submit``: the ``run`` task flushes the queue at most ``flush_interval_seconds``
after its first entry, or at once when it holds ``flush_max_rows`` nodes, as ONE
UPDATE statement whose predicate repeats the debounce (so replicas sharing the
database write once per window). Every waiter is answered only after that
statement committed (or failed: ``Unavailable``, never an unfounded success).

The ``run`` task is owned by ``open_runtime``; ``aclose`` flushes what is queued.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import enum
import logging
from collections.abc import Iterable

from gateway.config import Config
from gateway.db import Database, DatabaseFault
from gateway.errors import Unavailable
from gateway.metrics import Metrics

logger = logging.getLogger(__name__)

SHUTTING_DOWN = "gateway shutting down"


class WriteOutcome(enum.Enum):
    WRITTEN = "written"  # this flush advanced last_seen_at
    DEBOUNCED = "debounced"  # another writer advanced it within the window
    NOT_FOUND = "not_found"  # the node was deleted or revoked meanwhile


class _Entry:
    """One node's queued write: the latest heartbeat wins, every waiter is answered."""

    __slots__ = ("seen_at", "skew_ms", "waiters")

    def __init__(self, seen_at: datetime.datetime, skew_ms: int) -> None:
        self.seen_at = seen_at
        self.skew_ms = skew_ms
        self.waiters: list[asyncio.Future[WriteOutcome]] = []


class LastSeenWriter:
    def __init__(self, db: Database, config: Config, metrics: Metrics) -> None:
        self._db = db
        self._debounce_seconds = config.last_seen_debounce_seconds
        self._flush_interval_seconds = config.flush_interval_seconds
        self._max_rows = max(1, config.flush_max_rows)
        self._max_remembered = max(1, config.session_cache_size)
        self._metrics = metrics
        self._pending: dict[int, _Entry] = {}
        self._recent: collections.OrderedDict[int, datetime.datetime] = collections.OrderedDict()
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        # Loop time at which the oldest queued write arrived: its flush is due
        # flush_interval later, however long the previous UPDATE took.
        self._oldest_queued_at: float | None = None

    # --- the in-process debounce ---------------------------------------------------------

    def recently_written(self, node_id: int, now: datetime.datetime) -> bool:
        if self._debounce_seconds <= 0:
            return False
        last = self._recent.get(node_id)
        if last is None:
            return False
        return (now - last).total_seconds() <= self._debounce_seconds

    def forget(self, node_id: int) -> None:
        self._recent.pop(node_id, None)

    def _remember(self, node_id: int, last_seen_at: datetime.datetime) -> None:
        if self._debounce_seconds <= 0:
            return
        self._recent[node_id] = last_seen_at
        self._recent.move_to_end(node_id)
        while len(self._recent) > self._max_remembered:
            self._recent.popitem(last=False)

    # --- group commit ----------------------------------------------------------------------

    def queued(self) -> int:
        """Nodes waiting for the next flush."""
        return len(self._pending)

    async def submit(self, node_id: int, seen_at: datetime.datetime, skew_ms: int) -> WriteOutcome:
        """Queue a write of ``seen_at`` and wait until its flush committed."""
        if self._closing:
            raise Unavailable(SHUTTING_DOWN, retry_after_seconds=1.0)
        loop = asyncio.get_running_loop()
        if self._oldest_queued_at is None:
            self._oldest_queued_at = loop.time()
        entry = self._pending.get(node_id)
        if entry is None:
            entry = self._pending[node_id] = _Entry(seen_at, skew_ms)
        elif seen_at >= entry.seen_at:
            entry.seen_at, entry.skew_ms = seen_at, skew_ms
        waiter: asyncio.Future[WriteOutcome] = loop.create_future()
        entry.waiters.append(waiter)
        self._wakeup.set()
        if len(self._pending) >= self._max_rows:
            self._full.set()
        return await waiter

    async def run(self) -> None:
        """Flush until ``aclose``; returns once the queue is empty after closing."""
        while True:
            await self._wakeup.wait()
            if not self._closing and len(self._pending) < self._max_rows:
                # A cycle is max(flush interval, UPDATE time), not their sum: writes
                # queued during the previous UPDATE may already be due.
                oldest = self._oldest_queued_at
                due = asyncio.get_running_loop().time() if oldest is None else oldest
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(due + self._flush_interval_seconds):
                        await self._full.wait()
            await self._flush()
            if self._closing and not self._pending:
                return

    async def aclose(self, task: asyncio.Task[None], timeout_seconds: float) -> None:
        """Stop taking writes, flush the queue (bounded), answer every waiter."""
        self._closing = True
        self._wakeup.set()
        self._full.set()
        try:
            async with asyncio.timeout(timeout_seconds):
                await asyncio.shield(task)
        except TimeoutError:
            logger.warning("last_seen flush did not finish in %ss at shutdown", timeout_seconds)
        except Exception:
            logger.exception("last_seen writer failed")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            batch, self._pending = self._pending, {}
            self._fail(batch.values(), SHUTTING_DOWN)

    async def _flush(self) -> None:
        batch, self._pending = self._pending, {}
        self._oldest_queued_at = None
        self._wakeup.clear()
        self._full.clear()
        items = list(batch.items())
        try:
            for start in range(0, len(items), self._max_rows):
                await self._write(items[start : start + self._max_rows])
        except asyncio.CancelledError:
            # Cancelled mid-statement (shutdown past its bound): nobody is left waiting.
            self._fail(batch.values(), SHUTTING_DOWN)
            raise
        except Exception:
            logger.exception("last_seen flush failed")
            self._fail(batch.values(), "database unavailable")

    async def _write(self, items: list[tuple[int, _Entry]]) -> None:
        entries = dict(items)
        try:
            rows = await self._db.write_last_seen(
                [node_id for node_id, _ in items],
                [entry.seen_at for _, entry in items],
                [entry.skew_ms for _, entry in items],
                self._debounce_seconds,
            )
        except (Unavailable, DatabaseFault) as exc:
            logger.warning("last_seen flush of %s nodes failed: %s", len(items), exc)
            self._fail(entries.values(), "database unavailable")
            return
        self._metrics.last_seen_statements.inc()
        written = 0
        for node_id, was_written, live, last_seen_at in rows:
            entry = entries[int(node_id)]
            if was_written:
                written += 1
                self._remember(int(node_id), entry.seen_at)
                outcome = WriteOutcome.WRITTEN
            elif live:
                if last_seen_at is not None:
                    self._remember(int(node_id), last_seen_at)
                outcome = WriteOutcome.DEBOUNCED
            else:
                self.forget(int(node_id))
                outcome = WriteOutcome.NOT_FOUND
            for waiter in entry.waiters:
                if not waiter.done():
                    waiter.set_result(outcome)
        self._metrics.last_seen_rows_written.inc(written)

    @staticmethod
    def _fail(entries: Iterable[_Entry], message: str) -> None:
        for entry in entries:
            for waiter in entry.waiters:
                if not waiter.done():
                    waiter.set_exception(Unavailable(message, retry_after_seconds=1.0))
