"""``fleetnode run``: the daemon, one nursery with three tasks (SPEC 5.7)."""

from __future__ import annotations

import logging

import attrs
import trio

from agent import logs
from agent.client import open_gateway_client, ssl_verify
from agent.errors import ConfigurationError
from agent.heartbeat import HeartbeatTask
from agent.identity import Identity
from agent.runtime import Runtime
from agent.session import SessionHolder, SessionKeeper
from agent.signals import watch_signals
from agent.state import StateStore
from agent.urlrule import state_server_url

logger = logging.getLogger(__name__)


@attrs.frozen
class RunOptions:
    # None: follow the gateway's interval; a value: the operator's --heartbeat-interval.
    heartbeat_interval_seconds: float | None = None


async def run(store: StateStore, options: RunOptions, runtime: Runtime) -> None:
    """Run until a signal (returns) or a permanent failure (raises)."""
    # Checks that need no lock come first (78), then the lock (75), then the network.
    state = store.load_enrolled()
    if not state.api_key:
        raise ConfigurationError(
            "the state holds no api key: finish enrolling with `fleetnode refresh` "
            "(it prompts for the key)"
        )
    state_server_url(state)
    Identity.from_hex(state.identity_private_key)  # a damaged key is a 78, found before the lock
    store.prepare(create=False)
    with store.lock():
        state = store.load_enrolled()  # what another process may have saved meanwhile
        server_url = state_server_url(state)
        identity = Identity.from_hex(state.identity_private_key)
        logs.bind(fleet_node_id=state.fleet_node_id)
        session = state.session
        if session is not None and session.expires_at <= runtime.wall_clock():
            session = None  # expired: the keeper starts with a handshake
        holder = SessionHolder(session)
        async with open_gateway_client(
            server_url,
            verify=ssl_verify(state.ca_file),
            bearer=holder.bearer,
            transport=runtime.transport,
        ) as client:
            keeper = SessionKeeper(
                client=client,
                store=store,
                state=state,
                identity=identity,
                holder=holder,
                rng=runtime.rng,
                wall_clock=runtime.wall_clock,
            )
            heartbeats = HeartbeatTask(
                client=client,
                holder=holder,
                rng=runtime.rng,
                wall_clock=runtime.wall_clock,
                interval_seconds=options.heartbeat_interval_seconds,
            )
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(watch_signals, scope)
                    await nursery.start(keeper.keep_session_forever)
                    await nursery.start(heartbeats.heartbeat_forever)
                    logger.info("daemon started")
            logger.info("daemon stopped")
