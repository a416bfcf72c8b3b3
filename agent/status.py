"""``fleetnode status [--json]``: what the state holds, never a secret (SPEC 5.6).

Read-only: no lock, no network, creates and tightens nothing.
"""

from __future__ import annotations

import json
import logging

from agent.runtime import Runtime
from agent.state import State
from agent.statedir import StateStore
from fleetwire.codec import format_timestamp
from fleetwire.durations import format_duration

logger = logging.getLogger(__name__)


def status_fields(store: StateStore, state: State) -> dict[str, object]:
    """The public view of the state: every key of ``status --json``."""
    expires = state.session_expires_at
    return {
        "state_path": str(store.state_path),
        "server_url": state.server_url,
        "fleet_node_id": state.fleet_node_id,
        "name": state.name,
        "identity_fingerprint": state.identity_fingerprint,
        "api_key_present": bool(state.api_key),
        "session_present": state.session is not None,
        "session_expires_at": None if expires is None else format_timestamp(expires),
    }


def show_status(store: StateStore, runtime: Runtime, *, as_json: bool) -> None:
    with store.open() as directory:
        state = directory.load_enrolled()
        for loose in directory.loose_read_permissions():
            # Reported, not changed: status is read-only (enroll, refresh, run tighten it).
            logger.warning("%s; `fleetnode refresh` or `run` makes it private", loose)
    fields = status_fields(store, state)
    if as_json:
        runtime.stdout.write(json.dumps(fields, indent=2) + "\n")
    else:
        expires = state.session_expires_at
        for key, value in fields.items():
            if isinstance(value, bool):
                text = "yes" if value else "no"
            elif value is None:
                text = "-"
            else:
                text = str(value)
            if key == "session_expires_at" and expires is not None:
                left = (expires - runtime.wall_clock()).total_seconds()
                text += f" ({format_duration(left)} left)" if left > 0 else " (expired)"
            runtime.stdout.write(f"{key}: {text}\n")
    runtime.stdout.flush()
