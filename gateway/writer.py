"""The last_seen write path: per-node debounce and group commit (SPEC 4.1-4.3, 4.6).

``recently_written`` answers from memory for nodes whose ``last_seen_at`` is known to
be within the debounce window (no database work at all). Everything else is queued
with ``submit``: the writer task flushes the queue at most ``flush_interval_seconds``
after its first entry, or at once when it holds ``flush_max_rows`` nodes, as ONE
UPDATE statement whose predicate repeats the debounce (so replicas sharing the
database write once per window); with the debounce off (``0``) it flushes as soon as the
previous UPDATE finished, batching what queued meanwhile. Every waiter is answered only after that
statement committed (or failed: ``Unavailable``, never an unfounded success).

A goodbye (``stopping``) or a heartbeat carrying facts is always submitted (the
heartbeat service skips ``recently_written`` for it) and the statement writes it
inside the window when it changes something (SPEC 4.10, 4.11); the same statement
records the node's connectivity events (``gateway.store.last_seen``), so a heartbeat
the debounce absorbs costs no write at all.

``open_writer`` owns the task; on the way out it flushes what is queued (bounded).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import enum
import logging
from collections.abc import AsyncIterator, Iterable
from typing import NoReturn

import attrs

from gateway.config import Config
from gateway.errors import DatabaseFault, Unavailable
from gateway.metrics import Metrics
from gateway.store.last_seen import LastSeenStore
from gateway.store.records import LastSeenWrite, NodeFactsRecord
from gateway.tasks import TaskWatch, watched_task

logger = logging.getLogger(__name__)

SHUTTING_DOWN = "gateway shutting down"
WRITER_DOWN = "last_seen writer is down"
DRAIN_TIMEOUT_SECONDS = 5.0


class WriteOutcome(enum.Enum):
    WRITTEN = "written"  # this flush advanced last_seen_at
    DEBOUNCED = "debounced"  # another writer advanced it within the window
    NOT_FOUND = "not_found"  # the node was deleted or revoked meanwhile


class _Entry:
    """One node's queued write: the latest heartbeat wins, every waiter is answered."""

    __slots__ = ("waiters", "write")

    def __init__(self, write: LastSeenWrite) -> None:
        self.write = write
        self.waiters: list[asyncio.Future[WriteOutcome]] = []

    def merge(self, other: LastSeenWrite) -> None:
        # Facts are news whichever heartbeat of the batch carried them (the agent sends
        # them once), even one that queued late with an older time.
        facts = self.write.facts or other.facts
        if other.seen_at >= self.write.seen_at:
            self.write = attrs.evolve(other, facts=other.facts or facts)
        elif facts is not self.write.facts:
            self.write = attrs.evolve(self.write, facts=facts)


class LastSeenWriter:
    def __init__(self, store: LastSeenStore, config: Config, metrics: Metrics) -> None:
        self._store = store
        self._debounce_seconds = config.last_seen_debounce_seconds
        self._offline_after_seconds = config.offline_after_seconds
        self._flush_interval_seconds = config.flush_interval_seconds
        self._max_rows = max(1, config.flush_max_rows)
        self._max_remembered = max(1, config.session_cache_size)
        self._metrics = metrics
        self._pending: dict[int, _Entry] = {}
        self._recent: collections.OrderedDict[int, datetime.datetime] = collections.OrderedDict()
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._drained = asyncio.Event()
        self._refusal: str | None = None  # why submit refuses: shutting down, or dead
        # Loop time at which the oldest queued write arrived: its flush is due
        # flush_interval later, however long the previous UPDATE took.
        self._oldest_queued_at: float | None = None
        # Without a debounce every heartbeat waits for its write, and the window would
        # only leave the process idle meanwhile: flush as soon as the previous UPDATE is
        # done; what queued during it is the next batch (group commit). With a debounce,
        # writes are a fraction of the heartbeats and the window is what keeps statements
        # per heartbeat low (SPEC 4.3: flush-interval is an upper bound).
        self._eager = self._debounce_seconds <= 0

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

    async def submit(
        self,
        node_id: int,
        seen_at: datetime.datetime,
        skew_ms: int,
        *,
        stopping: bool = False,
        facts: NodeFactsRecord | None = None,
    ) -> WriteOutcome:
        """Queue a write of ``seen_at`` (a goodbye, facts) and wait until its flush committed."""
        if self._refusal is not None:
            raise Unavailable(self._refusal, retry_after_seconds=1.0)
        loop = asyncio.get_running_loop()
        if self._oldest_queued_at is None:
            self._oldest_queued_at = loop.time()
        write = LastSeenWrite(node_id, seen_at, skew_ms, stopping, facts)
        entry = self._pending.get(node_id)
        if entry is None:
            entry = self._pending[node_id] = _Entry(write)
        else:
            entry.merge(write)
        waiter: asyncio.Future[WriteOutcome] = loop.create_future()
        entry.waiters.append(waiter)
        self._wakeup.set()
        if len(self._pending) >= self._max_rows:
            self._full.set()
        return await waiter

    async def flush_forever(self) -> NoReturn:
        """The writer task: flush whenever writes are due; after ``drain`` began, tell it
        each time the queue is empty."""
        while True:
            await self._wakeup.wait()
            if not self._eager and self._refusal is None and len(self._pending) < self._max_rows:
                # A cycle is max(flush interval, UPDATE time), not their sum: writes
                # queued during the previous UPDATE may already be due.
                oldest = self._oldest_queued_at
                due = asyncio.get_running_loop().time() if oldest is None else oldest
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(due + self._flush_interval_seconds):
                        await self._full.wait()
            await self._flush()
            if self._refusal is not None and not self._pending:
                self._drained.set()

    async def drain(self, task: asyncio.Task[None]) -> None:
        """Stop taking writes and flush the queue (bounded); answer every waiter."""
        self._refusal = SHUTTING_DOWN
        self._wakeup.set()
        self._full.set()
        if not task.done():
            drained = asyncio.ensure_future(self._drained.wait())
            done, _ = await asyncio.wait(
                {drained, task}, timeout=DRAIN_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            drained.cancel()
            if not done:
                logger.warning("last_seen flush did not finish in %ss", DRAIN_TIMEOUT_SECONDS)
        self.abandon(SHUTTING_DOWN)

    def abandon(self, reason: str = WRITER_DOWN) -> None:
        """Refuse further writes and fail every queued one (the task is gone or going)."""
        self._refusal = reason
        batch, self._pending = self._pending, {}
        self._fail(batch.values(), reason)

    async def _flush(self) -> None:
        batch, self._pending = self._pending, {}
        self._oldest_queued_at = None
        self._wakeup.clear()
        self._full.clear()
        items = list(batch.items())
        try:
            for start in range(0, len(items), self._max_rows):
                await self._write(items[start : start + self._max_rows])
        finally:
            # Whatever ended the flush early (a cancellation past the shutdown bound, a
            # bug that kills the task): nobody is left waiting. Answered waiters are skipped.
            self._fail(batch.values(), "last_seen write did not complete")

    async def _write(self, items: list[tuple[int, _Entry]]) -> None:
        entries = dict(items)
        writes = [entry.write for _node_id, entry in items]
        try:
            results = await self._store.write(
                writes, self._debounce_seconds, self._offline_after_seconds
            )
        except (Unavailable, DatabaseFault) as exc:
            logger.warning("last_seen flush of %s nodes failed: %s", len(items), exc)
            self._fail(entries.values(), "database unavailable")
            return
        self._metrics.last_seen_statements.inc()
        written = 0
        for result in results:
            entry = entries[result.fleet_node_id]
            if result.written:
                written += 1
                if entry.write.stopping:
                    # STOPPED lasts until the next heartbeat: that one must reach the
                    # database, however recent this write.
                    self.forget(result.fleet_node_id)
                else:
                    self._remember(result.fleet_node_id, entry.write.seen_at)
                outcome = WriteOutcome.WRITTEN
            elif result.live:
                if result.last_seen_at is not None:
                    self._remember(result.fleet_node_id, result.last_seen_at)
                outcome = WriteOutcome.DEBOUNCED
            else:
                self.forget(result.fleet_node_id)
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


@contextlib.asynccontextmanager
async def open_writer(
    store: LastSeenStore, config: Config, metrics: Metrics, watch: TaskWatch
) -> AsyncIterator[LastSeenWriter]:
    """The writer and its task; on the way out the queue is flushed (bounded)."""
    writer = LastSeenWriter(store, config, metrics)
    async with watched_task(
        "last_seen_writer", writer.flush_forever, watch, on_death=writer.abandon
    ) as task:
        try:
            yield writer
        finally:
            await writer.drain(task)
