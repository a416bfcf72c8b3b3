"""An enrolled node on disk: a state directory the fake gateway knows, as enroll leaves it."""

from __future__ import annotations

import datetime
import secrets

import attrs

from agent.identity import Identity
from agent.state import State
from agent.statedir import StateStore
from tests.support.fake_gateway import API_KEY, SERVER_URL, T0, FakeGateway


def make_enrolled_state(
    store: StateStore,
    gateway: FakeGateway,
    *,
    session_expires_at: datetime.datetime | None = T0 + datetime.timedelta(hours=24),
    server_url: str = SERVER_URL,
) -> State:
    """A node the gateway knows, with its api key and (by default) a live session, on disk."""
    identity = Identity.generate()
    node = gateway.add_node(identity)
    state = State(
        server_url=server_url,
        fleet_node_id=node.node_id,
        name=node.name,
        identity_fingerprint=identity.fingerprint,
        identity_public_key=identity.public_key.hex(),
        identity_private_key=identity.private_key_hex,
        api_key=API_KEY,
    )
    if session_expires_at is not None:
        token = secrets.token_urlsafe(32)
        gateway.sessions[token] = (node.node_id, session_expires_at)
        gateway.issued_tokens.append(token)
        state = attrs.evolve(state, session_token=token, session_expires_at=session_expires_at)
    store.save(state)
    return state
