"""``fleetnode refresh``: a new session from the stored (or a prompted) api key (SPEC 5.5)."""

from __future__ import annotations

import logging

import attrs

from agent import logs
from agent.client import GatewayClient, open_gateway_client, ssl_verify
from agent.errors import GatewayUnavailable, Transient
from agent.identity import Identity
from agent.locked import open_locked_state, save_state
from agent.prompts import ask_secret
from agent.runtime import InThread, Runtime
from agent.session import handshake
from agent.state import State
from agent.statedir import StateDir, StateStore
from fleetwire.scalars import format_timestamp

logger = logging.getLogger(__name__)


async def handshake_and_save(
    client: GatewayClient,
    directory: StateDir,
    state: State,
    identity: Identity,
    api_key: str,
    in_thread: InThread,
) -> State:
    """The handshake with ``api_key``, then the key and the new session saved: only a key
    the gateway accepted is ever written (enroll and refresh)."""
    try:
        session = await handshake(client, identity, api_key)
    except Transient as exc:
        raise GatewayUnavailable.from_transient(exc) from exc
    state = attrs.evolve(state, api_key=api_key).with_session(session)
    await save_state(directory, state, in_thread)
    return state


async def refresh(store: StateStore, runtime: Runtime) -> None:
    with open_locked_state(store, api_key_required=False) as node:
        logs.bind(fleet_node_id=node.state.fleet_node_id)
        api_key = node.state.api_key or await ask_secret("API key: ", runtime.stdin, runtime.stderr)
        async with open_gateway_client(
            node.server_url, verify=ssl_verify(node.state.ca_file), transport=runtime.transport
        ) as client:
            state = await handshake_and_save(
                client, node.directory, node.state, node.identity, api_key, runtime.in_thread
            )
        logger.info("session refreshed")
    assert state.session is not None
    runtime.stdout.write(
        f"refreshed session_expires_at={format_timestamp(state.session.expires_at)}\n"
    )
    runtime.stdout.flush()
