"""The handshake, the current session, and the session keeper task (SPEC 3.4, 5.7)."""

from __future__ import annotations

import logging
import random
from typing import NoReturn

import trio

from agent.backoff import backoff_seconds
from agent.client import GatewayClient
from agent.errors import (
    CredentialsRejected,
    HandshakeFailed,
    ProtocolError,
    Rejected,
    StateNotSaved,
    Transient,
)
from agent.identity import Identity
from agent.locked import save_state
from agent.runtime import InThread, WallClock
from agent.state import Session, State
from agent.statedir import StateDir
from fleetwire import messages as m
from fleetwire.codes import Code
from fleetwire.procedures import BEGIN_AUTH_HANDSHAKE, COMPLETE_AUTH_HANDSHAKE
from fleetwire.scalars import format_timestamp
from fleetwire.validators import FieldError

logger = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 3600.0
REFRESH_JITTER_SECONDS = 600.0
KEEPER_BACKOFF_BASE_SECONDS = 5.0
# The soonest a session just issued is refreshed again when the local clock is wrong.
MIN_FRESH_SESSION_SECONDS = 3600.0

REENROLL_HINT = "re-enroll this node with `fleetnode enroll --force --server-url URL`"


async def handshake(client: GatewayClient, identity: Identity, api_key: str) -> Session:
    """Begin + Complete. CredentialsRejected when the api key is refused (permanent);
    HandshakeFailed when beginning again may work; Transient/ProtocolError as they come."""
    challenge = await begin_handshake(client, identity, api_key)
    return await complete_handshake(client, identity, challenge)


async def begin_handshake(client: GatewayClient, identity: Identity, api_key: str) -> bytes:
    """BeginAuthHandshake: the challenge to sign."""
    try:
        begin_request = m.BeginAuthHandshakeRequest(
            api_key=api_key, identity_pubkey=identity.public_key
        )
    except FieldError as exc:
        raise CredentialsRejected(
            "the api key is malformed (it must be 20..512 characters)"
        ) from exc
    try:
        begin = await client.call(BEGIN_AUTH_HANDSHAKE, begin_request)
    except Rejected as exc:
        if exc.code is Code.UNAUTHENTICATED:
            raise CredentialsRejected(
                f"the gateway rejected the api key ({exc.message or exc.code.value}): "
                f"the node may have been revoked; {REENROLL_HINT}"
            ) from exc
        raise HandshakeFailed(exc.procedure, exc.code, exc.message) from exc
    return begin.challenge


async def complete_handshake(
    client: GatewayClient, identity: Identity, challenge: bytes
) -> Session:
    """CompleteAuthHandshake with the signed challenge: the new session."""
    try:
        complete_request = m.CompleteAuthHandshakeRequest(
            challenge=challenge, signature=identity.sign_challenge(challenge)
        )
    except FieldError as exc:
        raise ProtocolError(f"BeginAuthHandshake: unusable challenge ({exc})") from exc
    try:
        complete = await client.call(COMPLETE_AUTH_HANDSHAKE, complete_request)
    except Rejected as exc:
        raise HandshakeFailed(exc.procedure, exc.code, exc.message) from exc
    if not complete.session_token or complete.expires_at is None:
        raise ProtocolError("CompleteAuthHandshake: the answer holds no session")
    return Session(complete.session_token, complete.expires_at)


class SessionHolder:
    """The current session, shared by the keeper (writer) and the heartbeat task (reader).

    ``generation`` counts the sessions installed, so a task that saw a token refused can ask
    for a session newer than the one it used.
    """

    def __init__(self, session: Session | None) -> None:
        self._session = session
        self.generation = 0 if session is None else 1
        self._changed = trio.Event()
        self._refresh_requested = trio.Event()

    @property
    def session(self) -> Session | None:
        return self._session

    def bearer(self) -> str | None:
        return None if self._session is None else self._session.token

    def install(self, session: Session) -> None:
        self._session = session
        self.generation += 1
        self._changed.set()
        self._changed = trio.Event()
        self._refresh_requested = trio.Event()

    async def wait_session(self) -> None:
        while self._session is None:
            await self._changed.wait()

    async def wait_refreshed_since(self, generation: int) -> None:
        """Ask the keeper for a new session and wait until one newer than ``generation``."""
        while self.generation == generation:
            self._refresh_requested.set()
            await self._changed.wait()

    async def wait_refresh_requested(self) -> None:
        await self._refresh_requested.wait()


class SessionKeeper:
    """Keeps a live session: refreshes before expiry and on request, saves each one."""

    def __init__(
        self,
        *,
        client: GatewayClient,
        directory: StateDir,
        state: State,
        identity: Identity,
        holder: SessionHolder,
        rng: random.Random,
        wall_clock: WallClock,
        in_thread: InThread,
    ) -> None:
        self._client = client
        self._directory = directory
        self._state = state
        self._identity = identity
        self._holder = holder
        self._rng = rng
        self._wall_clock = wall_clock
        self._in_thread = in_thread

    def _refresh_deadline(self, session: Session, *, fresh: bool = False) -> float:
        """Monotonic time of ``expiry - 1 h - U(0, 10 min)``: earlier, never later, than 1 h.

        ``fresh``: the session was just issued. If our wall clock says it has (almost) no
        time left, the clock is wrong (ahead of the gateway's by about the session's
        lifetime or more), not the session: refresh again in an hour rather than at once,
        which would be a storm of handshakes for as long as the clock stays wrong.
        """
        remaining = (session.expires_at - self._wall_clock()).total_seconds()
        jitter = self._rng.uniform(0.0, REFRESH_JITTER_SECONDS)
        delay = remaining - REFRESH_MARGIN_SECONDS - jitter
        if fresh and delay < MIN_FRESH_SESSION_SECONDS:
            logger.warning(
                "clock skew: the local clock says the new session expires in %.0f s; "
                "fix time synchronisation (refreshing again in %.0f s meanwhile)",
                remaining,
                MIN_FRESH_SESSION_SECONDS,
            )
            delay = MIN_FRESH_SESSION_SECONDS
        return trio.current_time() + delay

    async def keep_session_forever(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        task_status.started()
        failures = 0
        current = self._holder.session
        refresh_at = -float("inf") if current is None else self._refresh_deadline(current)
        while True:
            with trio.move_on_at(refresh_at):
                await self._holder.wait_refresh_requested()
            try:
                # CredentialsRejected is permanent: it rises to __main__ (exit 77, logged there).
                session = await handshake(self._client, self._identity, self._state.api_key)
            except (Transient, HandshakeFailed, ProtocolError) as exc:
                failures += 1
                retry_after = exc.retry_after_seconds if isinstance(exc, Transient) else None
                delay = backoff_seconds(
                    KEEPER_BACKOFF_BASE_SECONDS, failures, self._rng, retry_after
                )
                logger.warning(
                    "session refresh failed (%s); retrying in %.1f s (failure %d)",
                    exc,
                    delay,
                    failures,
                )
                await trio.sleep(delay)
                continue
            failures = 0
            # In use at once (the gateway ended the old one), then saved: heartbeats never
            # wait for the disk.
            self._holder.install(session)
            refresh_at = self._refresh_deadline(session, fresh=True)
            logger.info("new session, expires at %s", format_timestamp(session.expires_at))
            self._state = self._state.with_session(session)
            try:
                await save_state(self._directory, self._state, self._in_thread)
            except StateNotSaved as exc:
                # Keep heartbeating with the session held in memory; a restart would only
                # cost one handshake. Exiting here would turn a full disk into a dead node.
                logger.error("%s; the daemon keeps the new session in memory", exc)
