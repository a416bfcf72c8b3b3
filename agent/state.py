"""What a node keeps between runs (SPEC 5.2), and its encoding in ``state.json``.

:mod:`agent.statedir` reads and writes the file; this module only turns a :class:`State`
into bytes and back, through the one converter of the state-file boundary.
"""

from __future__ import annotations

import datetime

import attrs

from agent import jsonfile
from agent.errors import ConfigurationError


@attrs.frozen
class Session:
    token: str = attrs.field(repr=False)
    expires_at: datetime.datetime


@attrs.frozen
class State:
    """Everything the node keeps between runs; secrets are hidden from ``repr``."""

    server_url: str
    allow_insecure_transport: bool = False
    ca_file: str | None = None
    fleet_node_id: int = 0
    name: str = ""
    identity_fingerprint: str = ""
    identity_public_key: str = ""
    identity_private_key: str = attrs.field(default="", repr=False)
    api_key: str = attrs.field(default="", repr=False)
    session_token: str = attrs.field(default="", repr=False)
    session_expires_at: datetime.datetime | None = None

    @property
    def session(self) -> Session | None:
        if not self.session_token or self.session_expires_at is None:
            return None
        return Session(self.session_token, self.session_expires_at)

    def with_session(self, session: Session) -> State:
        return attrs.evolve(
            self, session_token=session.token, session_expires_at=session.expires_at
        )


# The one converter of the state-file boundary.
_converter = jsonfile.strict_converter()


def encode_state(state: State) -> bytes:
    return jsonfile.encode(_converter, state)


def decode_state(raw: bytes) -> State:
    try:
        return jsonfile.decode(_converter, raw, State)
    except jsonfile.DAMAGED as exc:
        # The message never quotes the file: it holds secrets.
        raise ConfigurationError(
            f"state.json is damaged ({type(exc).__name__}); re-enroll with `fleetnode enroll`"
        ) from exc
