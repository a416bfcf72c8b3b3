"""Attacks on the state directory with real files (SPEC 5.2): symbolic links in place of the
directory, state.json or state.lock, a hard-linked lock, a FIFO. Every command refuses with
exit 78 and a clear message, and no file outside the state directory is read through, written
through or truncated. Owners and modes: test_state_directory.py."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import trio

from agent.errors import ConfigurationError
from agent.statedir import StateStore
from tests.support.commands import Cli
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import SERVER_URL, FakeGateway

pytestmark = pytest.mark.trio

PRECIOUS = b"an attacker-chosen or otherwise precious file\n"
LOCKING_COMMANDS = [("refresh",), ("run",), ("enroll", "--server-url", SERVER_URL, "--force")]
ALL_COMMANDS = [("status",), *LOCKING_COMMANDS]


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "victim"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


async def test_symlinked_state_directory_is_refused_by_every_command(
    cli: Cli, gateway: FakeGateway, store: StateStore, tmp_path: Path
) -> None:
    """A state directory that is a symbolic link is refused (78) by status, refresh, run and
    enroll --force; the real directory behind it is left as it was."""
    real = StateStore(tmp_path / "real")
    make_enrolled_state(real, gateway)
    before = real.state_path.read_bytes()
    store.directory.symlink_to(real.directory)
    for argv in ALL_COMMANDS:
        outcome = await cli(*argv)
        assert outcome.code == 78, (argv, outcome)
        assert "symbolic link" in outcome.stderr, argv
    assert real.state_path.read_bytes() == before
    assert sorted(p.name for p in real.directory.iterdir()) == ["state.json"]


async def test_state_file_symlink_is_refused_and_never_followed(
    cli: Cli, gateway: FakeGateway, store: StateStore, tmp_path: Path
) -> None:
    """state.json replaced by a symbolic link to a file elsewhere (even a valid state) is
    refused (78) by every command, enroll --force included; the target is not read into the
    node's state, not rewritten, and the link stays a link."""
    make_enrolled_state(store, gateway)
    elsewhere = victim(tmp_path)
    elsewhere.write_bytes(store.state_path.read_bytes())  # a perfectly loadable state
    store.state_path.unlink()
    store.state_path.symlink_to(elsewhere)
    for argv in ALL_COMMANDS:
        outcome = await cli(*argv, stdin="code\n")
        assert outcome.code == 78, (argv, outcome)
        assert "state.json is a symbolic link" in outcome.stderr, argv
        assert store.state_path.is_symlink()
    assert gateway.calls_to("Register") == [] and gateway.calls_to("UploadHeartbeat") == []
    assert elsewhere.read_bytes().startswith(b"{")


async def test_save_replaces_a_symlinked_state_file_instead_of_writing_through(
    gateway: FakeGateway, store: StateStore, tmp_path: Path
) -> None:
    """A save meeting a symlinked state.json replaces the link by a private regular file; the
    link's target keeps its bytes."""
    state = make_enrolled_state(store, gateway)
    elsewhere = victim(tmp_path)
    store.state_path.unlink()
    store.state_path.symlink_to(elsewhere)
    store.save(state)
    assert elsewhere.read_bytes() == PRECIOUS
    info = store.state_path.lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert store.load() == state


@pytest.mark.parametrize("link", ["symlink", "dangling-symlink", "hardlink"])
async def test_linked_lock_file_is_refused_and_its_target_untouched(
    cli: Cli, gateway: FakeGateway, store: StateStore, tmp_path: Path, link: str
) -> None:
    """state.lock replaced by a symbolic or hard link to another file is refused (78) by
    refresh, run and enroll; the other file is neither created, truncated nor given our pid."""
    make_enrolled_state(store, gateway)
    target = victim(tmp_path)
    if link == "dangling-symlink":
        target.unlink()
    if link.endswith("symlink"):
        store.lock_path.symlink_to(target)
    else:
        os.link(target, store.lock_path)
    for argv in LOCKING_COMMANDS:
        outcome = await cli(*argv, stdin="code\n")
        assert outcome.code == 78, (argv, outcome)
        assert "state.lock" in outcome.stderr and "refusing" in outcome.stderr, outcome.stderr
        if link == "dangling-symlink":
            assert not target.exists()
        else:
            assert target.read_bytes() == PRECIOUS
    assert gateway.calls_to("BeginAuthHandshake") == []


async def test_lock_file_that_is_not_a_regular_file_is_refused(
    cli: Cli, gateway: FakeGateway, store: StateStore
) -> None:
    """A FIFO in place of state.lock is refused (78) with a message, not an unexpected error."""
    make_enrolled_state(store, gateway)
    os.mkfifo(store.lock_path)
    outcome = await cli("refresh")
    assert outcome.code == 78, outcome
    assert "state.lock is not a regular file" in outcome.stderr


async def test_state_file_fifo_is_refused_without_hanging(
    gateway: FakeGateway, store: StateStore
) -> None:
    """A FIFO in place of state.json makes status exit 78 at once instead of blocking forever
    on a read (checked in a real process, bounded by a timeout)."""
    make_enrolled_state(store, gateway)
    store.state_path.unlink()
    os.mkfifo(store.state_path)
    with trio.fail_after(20):
        done = await trio.run_process(
            [sys.executable, "-m", "agent", "--state-dir", str(store.directory), "status"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 78, done.stderr
    assert b"state.json is not a regular file" in done.stderr


async def test_state_directory_that_is_a_file_is_refused(cli: Cli, store: StateStore) -> None:
    """A regular file where the state directory should be is a configuration error (78)."""
    store.directory.write_bytes(PRECIOUS)
    for argv in ALL_COMMANDS:
        outcome = await cli(*argv, stdin="code\n")
        assert outcome.code == 78, (argv, outcome)
    assert store.directory.read_bytes() == PRECIOUS


async def test_load_refuses_a_symlink_even_to_a_loadable_state(
    gateway: FakeGateway, store: StateStore, tmp_path: Path
) -> None:
    """StateStore.load itself refuses a symlinked state.json (no check-then-read window)."""
    make_enrolled_state(store, gateway)
    elsewhere = tmp_path / "copy.json"
    elsewhere.write_bytes(store.state_path.read_bytes())
    store.state_path.unlink()
    store.state_path.symlink_to(elsewhere)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        store.load()
