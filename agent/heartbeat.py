"""The heartbeat task: deadline schedule, jitter, backoff, clock-skew warning (SPEC 5.7, 5.10)."""

from __future__ import annotations

import datetime
import logging
import random
from typing import NoReturn

import trio

from agent.backoff import backoff_seconds
from agent.client import GatewayClient
from agent.errors import NodeGone, ProtocolError, Rejected, Transient
from agent.facts import FactsReporter
from agent.healthwriter import HealthRecorder
from agent.runtime import WallClock
from agent.session import REENROLL_HINT, SessionHolder
from fleetwire import messages as m
from fleetwire.codes import Code
from fleetwire.procedures import UPLOAD_HEARTBEAT

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 30.0
MIN_SERVER_INTERVAL_SECONDS = 5.0
MIN_FLAG_INTERVAL_SECONDS = 1.0
JITTER_FRACTION = 0.1
CLOCK_SKEW_LIMIT_SECONDS = 60.0
CLOCK_SKEW_WARNING_PERIOD_SECONDS = 3600.0


class HeartbeatTask:
    """Sends heartbeats on a deadline schedule while the daemon runs.

    The k-th heartbeat of a schedule is due at ``anchor + k * interval`` and sent at that
    deadline plus an independent uniform jitter of ±10 % of the interval, so no drift
    accumulates. A schedule restarts (new anchor) when the interval changes.

    Each attempt's outcome goes to ``health`` (health.json); ``facts`` says which heartbeat
    carries the node's facts.
    """

    def __init__(
        self,
        *,
        client: GatewayClient,
        holder: SessionHolder,
        rng: random.Random,
        wall_clock: WallClock,
        interval_seconds: float | None,
        facts: FactsReporter,
        health: HealthRecorder,
    ) -> None:
        self._client = client
        self._facts = facts
        self._health = health
        self._holder = holder
        self._rng = rng
        self._wall_clock = wall_clock
        # An explicit --heartbeat-interval wins over the gateway's wish (SPEC 4.7).
        self._fixed = interval_seconds is not None
        self.interval_seconds = interval_seconds or DEFAULT_INTERVAL_SECONDS
        self._last_skew_warning: float | None = None

    async def heartbeat_forever(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        task_status.started()
        await self._holder.wait_session()
        anchor = trio.current_time()
        k = 0
        failures = 0
        next_at = anchor
        while True:
            await trio.sleep_until(next_at)
            sent_at = self._wall_clock()
            try:
                response = await self._send()
            except (Transient, Rejected, ProtocolError) as exc:
                self._record_failure(sent_at, exc)
                failures += 1
                retry_after = exc.retry_after_seconds if isinstance(exc, Transient) else None
                delay = backoff_seconds(self.interval_seconds, failures, self._rng, retry_after)
                logger.warning(
                    "heartbeat failed (%s); next attempt in %.1f s (failure %d)",
                    exc,
                    delay,
                    failures,
                )
                next_at = trio.current_time() + delay
                continue
            now = trio.current_time()
            adopted = self._adopt_interval(response)
            self._record_success(sent_at, response)
            if failures:
                logger.info("heartbeat succeeded again after %d failures", failures)
                failures = 0
            if adopted:
                anchor, k = now, 0
            k += 1
            # Skip the slots a failure or a slow answer made us miss.
            while anchor + (k - JITTER_FRACTION) * self.interval_seconds <= now:
                k += 1
            jitter = self._rng.uniform(-JITTER_FRACTION, JITTER_FRACTION) * self.interval_seconds
            next_at = anchor + k * self.interval_seconds + jitter

    def _session_expires_at(self) -> datetime.datetime | None:
        session = self._holder.session
        return None if session is None else session.expires_at

    def _record_success(
        self, sent_at: datetime.datetime, response: m.UploadHeartbeatResponse
    ) -> None:
        self._health.acknowledged(
            sent_at=sent_at,
            received_at=response.received_at or self._wall_clock(),
            interval_seconds=self.interval_seconds,  # adopted already: the one now in force
            session_expires_at=self._session_expires_at(),
        )

    def _record_failure(self, sent_at: datetime.datetime, exc: Exception) -> None:
        self._health.failed(
            sent_at=sent_at,
            error=str(exc),
            interval_seconds=self.interval_seconds,
            session_expires_at=self._session_expires_at(),
        )

    def _adopt_interval(self, response: m.UploadHeartbeatResponse) -> bool:
        """Take the gateway's interval (floored at 5 s) unless the flag fixed one."""
        wanted = response.heartbeat_interval_seconds
        if self._fixed or wanted <= 0:
            return False
        interval = max(float(wanted), MIN_SERVER_INTERVAL_SECONDS)
        if interval == self.interval_seconds:
            return False
        logger.info("heartbeat interval is now %.0f s, as the gateway asks", interval)
        self.interval_seconds = interval
        return True

    async def _send(self) -> m.UploadHeartbeatResponse:
        """One heartbeat; on ``unauthenticated``, one refresh and one retry with the new token."""
        generation = self._holder.generation
        try:
            return await self._upload()
        except Rejected as exc:
            if exc.code is not Code.UNAUTHENTICATED:
                raise
        logger.info("heartbeat unauthenticated; asking for a new session")
        await self._holder.wait_refreshed_since(generation)
        return await self._upload()

    async def _upload(self) -> m.UploadHeartbeatResponse:
        """One heartbeat, carrying the facts when they are new to the gateway; facts it
        refuses (``invalid_argument``) are dropped and the heartbeat sent again without."""
        facts = self._facts.pending()
        if facts is None:
            return await self._post(None)
        try:
            response = await self._post(facts)
        except Rejected as exc:
            if exc.code is not Code.INVALID_ARGUMENT:
                raise
            self._facts.refused(facts, str(exc))
            return await self._post(None)
        self._facts.delivered(facts)
        return response

    async def _post(self, facts: m.NodeFacts | None) -> m.UploadHeartbeatResponse:
        sent_at = self._wall_clock()
        try:
            response = await self._client.call(
                UPLOAD_HEARTBEAT, m.UploadHeartbeatRequest(sent_at=sent_at, facts=facts)
            )
        except Rejected as exc:
            if exc.code is Code.NOT_FOUND:
                # Logged once, by __main__, which turns it into exit 77.
                raise NodeGone(
                    f"the gateway no longer knows this node ({exc.message or exc.code.value}): "
                    f"it was revoked or deleted; {REENROLL_HINT}"
                ) from exc
            raise
        answered_at = self._wall_clock()
        logger.debug("heartbeat sent")
        if response.received_at is not None:
            self._check_clock(sent_at, answered_at, response.received_at)
        return response

    def _check_clock(
        self,
        sent_at: datetime.datetime,
        answered_at: datetime.datetime,
        received_at: datetime.datetime,
    ) -> None:
        """Warn (once per hour) when the gateway's receivedAt lies more than 60 s outside the
        round trip [sent_at, answered_at] as our clock measured it."""
        if received_at < sent_at:
            skew = (sent_at - received_at).total_seconds()  # we are ahead
        elif received_at > answered_at:
            skew = -(received_at - answered_at).total_seconds()  # we are behind
        else:
            return
        if abs(skew) <= CLOCK_SKEW_LIMIT_SECONDS:
            return
        now = trio.current_time()
        last = self._last_skew_warning
        if last is not None and now - last < CLOCK_SKEW_WARNING_PERIOD_SECONDS:
            return
        self._last_skew_warning = now
        logger.warning(
            "clock skew: the local clock is %.0f s %s the gateway's; fix time synchronisation",
            abs(skew),
            "ahead of" if skew > 0 else "behind",
        )
