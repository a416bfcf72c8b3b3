"""What a node keeps between runs (SPEC 5.2), and its encoding in ``state.json``.

:mod:`agent.statedir` reads and writes the file; this module only turns a :class:`State`
into bytes and back, through the one converter of the state-file boundary.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import attrs
import cattrs

from agent.errors import ConfigurationError
from fleetwire.codec import format_timestamp


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


def _make_converter() -> cattrs.Converter:
    """The one converter of the state-file boundary."""
    converter = cattrs.Converter(detailed_validation=False)

    def structure_timestamp(value: Any, _: type) -> datetime.datetime:
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 timestamp")
        parsed = datetime.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("must carry a time zone")
        return parsed.astimezone(datetime.UTC)

    def structure_str(value: Any, _: type) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value

    def structure_int(value: Any, _: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        return value

    def structure_bool(value: Any, _: type) -> bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value

    converter.register_structure_hook(datetime.datetime, structure_timestamp)
    converter.register_structure_hook(str, structure_str)
    converter.register_structure_hook(int, structure_int)
    converter.register_structure_hook(bool, structure_bool)
    converter.register_unstructure_hook(datetime.datetime, format_timestamp)
    return converter


_converter = _make_converter()


def encode_state(state: State) -> bytes:
    return (json.dumps(_converter.unstructure(state), indent=2, sort_keys=True) + "\n").encode()


def decode_state(raw: bytes) -> State:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return _converter.structure(data, State)
    except (
        ValueError,
        TypeError,
        KeyError,
        RecursionError,
        OverflowError,  # a timestamp that leaves years 1..9999 once moved to UTC
        cattrs.BaseValidationError,
    ) as exc:
        # The message never quotes the file: it holds secrets.
        raise ConfigurationError(
            f"state.json is damaged ({type(exc).__name__}); re-enroll with `fleetnode enroll`"
        ) from exc
