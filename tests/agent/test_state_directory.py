"""Who may own and write the state directory and state.json, how missing parents are made,
and that a command keeps working on the directory it opened (SPEC 5.2)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from agent.statedir import StateStore
from tests.support.commands import Cli, run_command
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import API_KEY, ENROLLMENT_CODE, SERVER_URL, FakeGateway

pytestmark = pytest.mark.trio

LOCKING_COMMANDS = [("refresh",), ("run",), ("enroll", "--server-url", SERVER_URL, "--force")]
ALL_COMMANDS = [("status",), *LOCKING_COMMANDS]
ANOTHER_UID = 65534  # nobody: the tests run as root, which may chown to it
OTHER_API_KEY = "fleet_0000ffff_" + "F" * 43


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


async def test_missing_parents_are_created_0700_whatever_the_umask(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    """enroll into a state directory whose parents are missing creates each of them 0700,
    even under umask 0 (and state.json 0600)."""
    store = StateStore(tmp_path / "a" / "b" / "state")
    with umask(0):
        outcome = await run_command(
            store,
            gateway.transport,
            "enroll",
            "--server-url",
            SERVER_URL,
            stdin=f"{ENROLLMENT_CODE}\n{API_KEY}\n",
        )
    assert outcome.code == 0, outcome.stderr
    for directory in (tmp_path / "a", tmp_path / "a" / "b", store.directory):
        assert mode(directory) == 0o700, directory
    assert mode(store.state_path) == 0o600


@pytest.mark.parametrize("what", ["directory", "state.json"])
async def test_state_owned_by_another_user_is_refused_by_every_command(
    cli: Cli, gateway: FakeGateway, store: StateStore, what: str
) -> None:
    """A state directory or state.json owned by another uid is refused (78, naming the
    owner) by status, refresh, run and enroll --force, before any request; nothing in it is
    changed."""
    make_enrolled_state(store, gateway)
    target = store.directory if what == "directory" else store.state_path
    os.chown(target, ANOTHER_UID, ANOTHER_UID)
    before = store.state_path.read_bytes()
    for argv in ALL_COMMANDS:
        outcome = await cli(*argv, stdin=f"{ENROLLMENT_CODE}\n")
        assert outcome.code == 78, (argv, outcome)
        assert f"owned by uid {ANOTHER_UID}" in outcome.stderr, outcome.stderr
    assert gateway.calls == []
    assert store.state_path.read_bytes() == before
    # enroll may have taken the lock of its own directory; nothing else was written.
    assert {p.name for p in store.directory.iterdir()} <= {"state.json", "state.lock"}


@pytest.mark.parametrize(
    ("what", "loose"),
    [
        pytest.param("directory", 0o770, id="directory-0770"),
        pytest.param("directory", 0o703, id="directory-0703"),
        pytest.param("state.json", 0o620, id="state.json-0620"),
        pytest.param("state.json", 0o602, id="state.json-0602"),
    ],
)
async def test_state_writable_by_group_or_others_is_refused_not_tightened(
    cli: Cli, gateway: FakeGateway, store: StateStore, what: str, loose: int
) -> None:
    """A state directory or state.json writable by group or others is refused (78) by every
    command, status included, and left as it is: someone else may have written it."""
    make_enrolled_state(store, gateway)
    target = store.directory if what == "directory" else store.state_path
    target.chmod(loose)
    for argv in ALL_COMMANDS:
        outcome = await cli(*argv, stdin=f"{ENROLLMENT_CODE}\n")
        assert outcome.code == 78, (argv, outcome)
        assert "writable by group or others" in outcome.stderr, outcome.stderr
    assert mode(target) == loose
    assert gateway.calls == []


async def test_loose_read_permissions_are_reported_by_status_and_tightened_by_locking_commands(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A 0755 state directory and a 0644 state.json are only reported by status, and
    tightened to 0700 and 0600 by refresh, run and enroll before use."""
    make_enrolled_state(store, gateway)
    gateway.next_api_key = OTHER_API_KEY  # for the node enroll --force registers
    for argv in LOCKING_COMMANDS:
        store.directory.chmod(0o755)
        store.state_path.chmod(0o644)
        status = await cli("status")
        assert status.code == 0, status
        assert "readable by group or others" in status.stderr
        assert (mode(store.directory), mode(store.state_path)) == (0o755, 0o644)
        with trio.move_on_after(5):
            outcome = await cli(*argv, stdin=f"{ENROLLMENT_CODE}\n{OTHER_API_KEY}\n")
        assert outcome.code in (0, None), (argv, outcome)  # None: run was still running
        assert (mode(store.directory), mode(store.state_path)) == (0o700, 0o600), argv
        gateway.codes.add(ENROLLMENT_CODE)


async def test_run_keeps_saving_into_the_directory_it_opened_when_the_path_is_swapped(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the state directory is renamed away and a symbolic link to another directory
    put at its path while run runs, the next session is saved into the directory run
    locked, and nothing at all is written through the link."""
    make_enrolled_state(store, gateway)
    moved = tmp_path / "moved"
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)

    async def swap_then_end_sessions() -> None:
        await trio.sleep_until(100.0)
        store.directory.rename(moved)
        store.directory.symlink_to(planted)
        gateway.end_sessions()  # the next heartbeat is refused: a refresh and a save follow

    async with trio.open_nursery() as nursery:
        nursery.start_soon(swap_then_end_sessions)
        with trio.move_on_after(300):
            await cli("run")
    assert len(gateway.issued_tokens) == 2
    assert list(planted.iterdir()) == []
    saved = StateStore(moved).load()
    assert saved is not None and saved.session_token == gateway.issued_tokens[-1]
