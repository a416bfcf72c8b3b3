"""``fleetnode run``: the daemon, one nursery with three tasks (SPEC 5.7)."""

from __future__ import annotations

import logging
import os

import attrs
import trio

from agent import logs
from agent.client import open_gateway_client, ssl_verify
from agent.facts import FactsReporter
from agent.goodbye import say_goodbye
from agent.health import Health
from agent.healthwriter import HealthRecorder
from agent.heartbeat import DEFAULT_INTERVAL_SECONDS, HeartbeatTask
from agent.locked import LockedState, open_locked_state
from agent.runtime import Runtime
from agent.session import SessionHolder, SessionKeeper
from agent.signals import watch_signals
from agent.statedir import StateStore

logger = logging.getLogger(__name__)


@attrs.frozen
class RunOptions:
    # None: follow the gateway's interval; a value: the operator's --heartbeat-interval.
    heartbeat_interval_seconds: float | None = None


async def run(store: StateStore, options: RunOptions, runtime: Runtime) -> None:
    """Run until a signal (returns) or a permanent failure (raises)."""
    # The checks that need no lock first (78), then the lock (75), then the network.
    with open_locked_state(store, api_key_required=True) as node:
        await run_node(node, options, runtime)


async def run_node(
    node: LockedState,
    options: RunOptions,
    runtime: Runtime,
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The daemon on a state its caller has locked: the gateway client, and one nursery
    with the signal watcher, the health writer, the session keeper and the heartbeat task.

    Started once all are. Returns after SIGINT/SIGTERM, having said goodbye to the gateway
    (SPEC 4.10); raises on a permanent failure. ``handle_signals=False`` leaves shutdown to
    the caller, which cancels, and then there is no goodbye (many nodes in one process, as
    the fault tests run them, cannot each own the signals).
    """
    logs.bind(fleet_node_id=node.state.fleet_node_id)
    session = node.state.session
    if session is not None and session.expires_at <= runtime.wall_clock():
        session = None  # expired: the keeper starts with a handshake
    holder = SessionHolder(session)
    async with open_gateway_client(
        node.server_url,
        verify=ssl_verify(node.state.ca_file),
        bearer=holder.bearer,
        transport=runtime.transport,
    ) as client:
        keeper = SessionKeeper(
            client=client,
            directory=node.directory,
            state=node.state,
            identity=node.identity,
            holder=holder,
            rng=runtime.rng,
            wall_clock=runtime.wall_clock,
            in_thread=runtime.in_thread,
        )
        health = HealthRecorder(
            directory=node.directory,
            in_thread=runtime.in_thread,
            initial=Health(
                pid=os.getpid(),
                started_at=runtime.wall_clock(),
                heartbeat_interval_seconds=(
                    options.heartbeat_interval_seconds or DEFAULT_INTERVAL_SECONDS
                ),
                session_expires_at=None if session is None else session.expires_at,
            ),
        )
        heartbeats = HeartbeatTask(
            client=client,
            holder=holder,
            rng=runtime.rng,
            wall_clock=runtime.wall_clock,
            interval_seconds=options.heartbeat_interval_seconds,
            facts=FactsReporter(runtime.node_facts),
            health=health,
        )
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                if handle_signals:
                    await nursery.start(watch_signals, scope)
                await nursery.start(health.write_forever)
                await nursery.start(keeper.keep_session_forever)
                await nursery.start(heartbeats.heartbeat_forever)
                logger.info("daemon started")
                task_status.started()
        # Only the signal watcher cancels this scope: a signal, so a clean stop.
        if scope.cancelled_caught:
            await say_goodbye(client, holder, runtime.wall_clock)
        logger.info("daemon stopped")
