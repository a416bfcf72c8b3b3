"""The enrolled state as the commands that save take it: checked, locked, read again.

``refresh`` and ``run`` open it with :func:`open_locked_state`, which keeps SPEC 5.10's
order: the checks that need no lock (state present, api key present, a valid server URL, a
readable identity key: 78) come before the lock is taken (75), then are made again on what
is read under the lock (another process may have saved meanwhile).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import attrs

from agent.errors import ConfigurationError
from agent.identity import Identity
from agent.runtime import InThread
from agent.state import State
from agent.statedir import StateDir, StateStore
from agent.urlrule import state_server_url


@attrs.frozen
class LockedState:
    """An enrolled state read under the lock, with what its checks derived from it."""

    directory: StateDir  # open and locked: the saves go here
    state: State
    server_url: str
    identity: Identity


@contextlib.contextmanager
def open_locked_state(store: StateStore, *, api_key_required: bool) -> Iterator[LockedState]:
    """Load, check, lock, reload and check again; the lock is held inside the block."""
    _check(store.load_enrolled(), api_key_required)
    with store.lock() as directory:
        state = directory.load_enrolled()
        server_url, identity = _check(state, api_key_required)
        yield LockedState(directory, state, server_url, identity)


def _check(state: State, api_key_required: bool) -> tuple[str, Identity]:
    if api_key_required and not state.api_key:
        raise ConfigurationError(
            "the state holds no api key: finish enrolling with `fleetnode refresh` "
            "(it prompts for the key)"
        )
    return state_server_url(state), Identity.from_hex(state.identity_private_key)


async def save_state(directory: StateDir, state: State, in_thread: InThread) -> None:
    """Save off the Trio loop, so a slow disk delays no heartbeat. Not abandoned on
    cancellation: a shutdown waits for the save, which is never left half-done."""
    await in_thread(functools.partial(directory.save, state))
