"""``fleetnode refresh``: a new session from the stored (or a prompted) api key (SPEC 5.5)."""

from __future__ import annotations

import logging

import attrs

from agent import logs
from agent.client import GatewayClient, open_gateway_client, ssl_verify
from agent.errors import GatewayUnavailable, Transient
from agent.identity import Identity
from agent.prompts import ask_secret
from agent.runtime import Runtime
from agent.session import handshake
from agent.state import State, StateStore
from agent.urlrule import state_server_url
from fleetwire.codec import format_timestamp

logger = logging.getLogger(__name__)


async def handshake_and_save(
    client: GatewayClient, store: StateStore, state: State, identity: Identity, api_key: str
) -> State:
    """The handshake with ``api_key``, then the key and the new session saved: only a key
    the gateway accepted is ever written (enroll and refresh)."""
    try:
        session = await handshake(client, identity, api_key)
    except Transient as exc:
        raise GatewayUnavailable.from_transient(exc) from exc
    state = attrs.evolve(state, api_key=api_key).with_session(session)
    store.save(state)
    return state


async def refresh(store: StateStore, runtime: Runtime) -> None:
    state = store.load_enrolled()  # checks that need no lock come first
    state_server_url(state)
    store.prepare(create=False)
    with store.lock():
        state = store.load_enrolled()  # what another process may have saved meanwhile
        server_url = state_server_url(state)
        logs.bind(fleet_node_id=state.fleet_node_id)
        identity = Identity.from_hex(state.identity_private_key)
        api_key = state.api_key or await ask_secret("API key: ", runtime.stdin, runtime.stderr)
        async with open_gateway_client(
            server_url, verify=ssl_verify(state.ca_file), transport=runtime.transport
        ) as client:
            state = await handshake_and_save(client, store, state, identity, api_key)
        logger.info("session refreshed")
    assert state.session is not None
    runtime.stdout.write(
        f"refreshed session_expires_at={format_timestamp(state.session.expires_at)}\n"
    )
    runtime.stdout.flush()
