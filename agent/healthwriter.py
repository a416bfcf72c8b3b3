"""The daemon's side of ``health.json`` (SPEC 5.11): the current :class:`Health`, and the
task that saves it.

The heartbeat task records each attempt (a few assignments, never a wait); the writer task
saves the newest record off the Trio loop, atomically, through the state directory's
descriptor. So a slow disk delays no heartbeat, and the file is saved at most once per
heartbeat attempt (plus once at start, so ``check`` sees a new daemon at once): records
made while a save is under way are coalesced into the next save.
"""

from __future__ import annotations

import datetime
import functools
import logging
from typing import NoReturn

import attrs
import trio

from agent.errors import StateNotSaved
from agent.health import HEALTH_FILE, Health, encode_health, shorten_error
from agent.runtime import InThread
from agent.statedir import StateDir

logger = logging.getLogger(__name__)


class HealthRecorder:
    """The daemon's current health; :meth:`write_forever` saves each new version."""

    def __init__(self, *, directory: StateDir, in_thread: InThread, initial: Health) -> None:
        self._directory = directory
        self._in_thread = in_thread
        self._health = initial
        self._changed = trio.Event()
        self._changed.set()  # the first save: the daemon exists
        self._save_failing = False

    @property
    def health(self) -> Health:
        return self._health

    def acknowledged(
        self,
        *,
        sent_at: datetime.datetime,
        received_at: datetime.datetime,
        interval_seconds: float,
        session_expires_at: datetime.datetime | None,
    ) -> None:
        """A heartbeat sent at ``sent_at`` was acknowledged with ``received_at``."""
        self._record(
            attrs.evolve(
                self._health,
                last_heartbeat_at=received_at,
                last_attempt_at=sent_at,
                consecutive_failures=0,
                last_error=None,
                heartbeat_interval_seconds=interval_seconds,
                session_expires_at=session_expires_at,
            )
        )

    def failed(
        self,
        *,
        sent_at: datetime.datetime,
        error: str,
        interval_seconds: float,
        session_expires_at: datetime.datetime | None,
    ) -> None:
        """A heartbeat sent at ``sent_at`` failed with ``error`` (an agent error's text)."""
        self._record(
            attrs.evolve(
                self._health,
                last_attempt_at=sent_at,
                consecutive_failures=self._health.consecutive_failures + 1,
                last_error=shorten_error(error),
                heartbeat_interval_seconds=interval_seconds,
                session_expires_at=session_expires_at,
            )
        )

    def _record(self, health: Health) -> None:
        self._health = health
        self._changed.set()

    async def write_forever(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        task_status.started()
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            data = encode_health(self._health)
            save = functools.partial(self._directory.write_file, HEALTH_FILE, data)
            try:
                # Not abandoned on cancellation: a shutdown waits for a save under way,
                # which is never left half-done.
                await self._in_thread(save)
            except StateNotSaved as exc:
                if not self._save_failing:
                    logger.error("%s; the daemon goes on, check will see an old health", exc)
                self._save_failing = True
                continue
            if self._save_failing:
                logger.info("health.json saved again")
                self._save_failing = False
