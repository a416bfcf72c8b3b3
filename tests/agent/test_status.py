"""fleetnode status: read-only, no secret, text or JSON (SPEC 5.6)."""

from __future__ import annotations

import json
import stat

import attrs
import pytest
import trio.testing

from agent.statedir import StateStore
from tests.support.commands import Cli
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import FakeGateway

pytestmark = pytest.mark.trio

KEYS = {
    "state_path",
    "server_url",
    "fleet_node_id",
    "name",
    "identity_fingerprint",
    "api_key_present",
    "session_present",
    "session_expires_at",
}


async def test_status_json_parses_and_holds_no_secret(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """status --json prints the public fields only: no token, api key or private key."""
    state = make_enrolled_state(store, gateway)
    outcome = await cli("status", "--json")
    assert outcome.code == 0
    fields = json.loads(outcome.stdout)
    assert fields.keys() == KEYS
    assert fields["state_path"] == str(store.state_path)
    assert fields["fleet_node_id"] == 1
    assert fields["identity_fingerprint"] == state.identity_fingerprint
    assert fields["api_key_present"] is True and fields["session_present"] is True
    assert fields["session_expires_at"] == "2026-11-27T12:00:00Z"
    for secret in (state.api_key, state.session_token, state.identity_private_key):
        assert secret not in outcome.stdout + outcome.stderr


async def test_status_text_shows_time_left_and_no_secret(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """status prints one line per field, with the session's time left, and no secret."""
    state = make_enrolled_state(store, gateway)
    outcome = await cli("status")
    assert outcome.code == 0
    assert f"fleet_node_id: {state.fleet_node_id}\n" in outcome.stdout
    assert "api_key_present: yes\n" in outcome.stdout
    assert "session_expires_at: 2026-11-27T12:00:00Z (1d left)" in outcome.stdout
    for secret in (state.api_key, state.session_token, state.identity_private_key):
        assert secret not in outcome.stdout + outcome.stderr


async def test_status_of_a_partial_enrollment(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """A state without api key and session says so."""
    make_enrolled_state(store, gateway, session_expires_at=None)
    state = store.load()
    assert state is not None
    store.save(attrs.evolve(state, api_key=""))
    fields = json.loads((await cli("status", "--json")).stdout)
    assert fields["api_key_present"] is False and fields["session_present"] is False
    assert fields["session_expires_at"] is None


async def test_status_never_locks_tightens_or_calls_the_gateway(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """status works while another process holds the lock, leaves modes alone, sends nothing."""
    make_enrolled_state(store, gateway)
    with store.lock():
        store.directory.chmod(0o755)
        outcome = await cli("status")
    assert outcome.code == 0
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o755
    assert gateway.calls == []
