"""Property-based tests of the state file's decoder: whatever bytes sit in state.json, loading
yields a State or a ConfigurationError (exit 78) that quotes nothing from the file."""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.errors import ConfigurationError
from agent.state import State, decode_state, encode_state
from tests.fleetwire.json_strategies import json_values

PROPERTIES = settings(max_examples=100, deadline=None, derandomize=True, database=None)
KEYS = [field.name for field in attrs.fields(State)]
VALID = {
    "server_url": "https://gw.test",
    "fleet_node_id": 7,
    "name": "node",
    "api_key": "fleet_0123abcd_" + "K" * 43,
    "session_token": "S" * 43,
    "session_expires_at": "2026-11-27T12:00:00Z",
}


def assert_state_or_configuration_error(raw: bytes) -> None:
    try:
        state = decode_state(raw)
    except ConfigurationError as exc:
        assert str(exc).startswith("state.json is damaged ("), str(exc)
        assert "re-enroll" in str(exc)
    else:
        assert isinstance(state, State)


@PROPERTIES
@given(raw=st.binary(max_size=300))
@example(raw=b"[" * 100_000)
@example(raw=b"\xef\xbb\xbf{}")
@example(raw=b'{"server_url": "https://gw.test", "fleet_node_id": ' + b"1" * 5000 + b"}")
def test_arbitrary_bytes_load_or_are_a_configuration_error(raw: bytes) -> None:
    """Any bytes in state.json give a State or a ConfigurationError, never a crash."""
    assert_state_or_configuration_error(raw)


@PROPERTIES
@given(
    changes=st.dictionaries(st.sampled_from(KEYS), json_values(), max_size=3),
)
@example(changes={"session_expires_at": "0001-01-01T00:00:00+01:00"})
@example(changes={"session_expires_at": "9999-12-31T23:59:59-01:00"})
def test_wrong_values_in_a_valid_state_are_a_configuration_error(changes: dict[str, Any]) -> None:
    """A valid state with any field replaced by any JSON value loads or is a
    ConfigurationError naming no value (the file holds secrets)."""
    raw = json.dumps({**VALID, **changes}).encode()
    try:
        decode_state(raw)
    except ConfigurationError as exc:
        for secret in (VALID["api_key"], VALID["session_token"]):
            assert secret not in str(exc)


@PROPERTIES
@given(
    name=st.text(max_size=40),
    node_id=st.integers(min_value=1, max_value=2**63 - 1),
    token=st.text(max_size=60),
)
def test_any_saved_state_loads_back_equal(name: str, node_id: int, token: str) -> None:
    """Whatever a node's name and tokens hold (NUL, surrogates, emoji), a saved state loads
    back equal."""
    state = State(
        server_url="https://gw.test", fleet_node_id=node_id, name=name, session_token=token
    )
    assert decode_state(encode_state(state)) == state
