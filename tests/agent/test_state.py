"""The state directory: atomic saves, permissions, symlinks, the lock (SPEC 5.2)."""

from __future__ import annotations

import datetime
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.errors import ConfigurationError, NoState, StateLocked, StateNotSaved
from agent.state import State
from agent.statedir import StateStore

EXPIRES = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)


def sample(**changes: object) -> State:
    values: dict[str, object] = {
        "server_url": "https://gw.test",
        "fleet_node_id": 42,
        "name": "node-a",
        "identity_fingerprint": "0011223344556677",
        "identity_public_key": "ab" * 32,
        "identity_private_key": "cd" * 32,
        "api_key": "fleet_0123abcd_" + "K" * 43,
        "session_token": "S" * 43,
        "session_expires_at": EXPIRES,
    }
    values.update(changes)
    return State(**values)  # type: ignore[arg-type]


class SimulatedCrash(BaseException):
    """Stands for the process dying between write and rename."""


def crash(_src: str, _dst: str, **_dir_fds: int) -> None:
    raise SimulatedCrash


def temp_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_save_then_load_round_trips_with_private_permissions(tmp_path: Path) -> None:
    """A saved state loads back equal; the directory is 0700 and the file 0600."""
    store = StateStore(tmp_path / "a" / "state")
    store.save(sample())
    assert store.load() == sample()
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.state_path.stat().st_mode) == 0o600
    assert temp_files(store.directory) == []


def test_loose_directory_is_tightened_by_the_lock(tmp_path: Path) -> None:
    """A state directory readable by others is tightened to 0700 when it is locked."""
    directory = tmp_path / "state"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    with StateStore(directory).lock():
        pass
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_lock_without_create_never_creates(tmp_path: Path) -> None:
    """Without ``create``, a missing directory is NoState and stays missing."""
    store = StateStore(tmp_path / "missing")
    with pytest.raises(NoState, match="fleetnode enroll"), store.lock():
        pass
    assert store.load() is None
    assert not store.directory.exists()


def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    """A state directory that is a symbolic link is refused for loading and locking."""
    real = tmp_path / "real"
    StateStore(real).save(sample())
    link = tmp_path / "link"
    link.symlink_to(real)
    store = StateStore(link)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        store.load()
    with pytest.raises(ConfigurationError, match="symbolic link"), store.lock(create=True):
        pass


def test_save_interrupted_before_rename_keeps_the_old_state(tmp_path: Path) -> None:
    """A crash between write and rename leaves the previous state loadable; the next save
    removes the stale temp file."""
    directory = tmp_path / "state"
    good = StateStore(directory)
    good.save(sample())
    with pytest.raises(SimulatedCrash):
        StateStore(directory, replace=crash).save(sample(name="new-name"))
    assert good.load() == sample()
    assert len(temp_files(directory)) == 1
    good.save(sample(name="third"))
    loaded = good.load()
    assert loaded is not None and loaded.name == "third"
    assert temp_files(directory) == []


def test_failed_rename_removes_its_temp_file_and_keeps_the_old_state(tmp_path: Path) -> None:
    """An OSError at rename is reported, the old state stays and no temp file is left."""

    def failing(_src: str, _dst: str, **_dir_fds: int) -> None:
        raise OSError(28, "No space left on device")

    directory = tmp_path / "state"
    StateStore(directory).save(sample())
    with pytest.raises(StateNotSaved, match="No space"):
        StateStore(directory, replace=failing).save(sample(name="other"))
    assert StateStore(directory).load() == sample()
    assert temp_files(directory) == []


def test_process_killed_during_save_leaves_old_state(tmp_path: Path) -> None:
    """A process SIGKILLed between write and rename leaves the old file, complete."""
    directory = tmp_path / "state"
    store = StateStore(directory)
    store.save(sample())
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from agent.state import State
        from agent.statedir import StateStore
        def die(src, dst, **dir_fds):
            os.kill(os.getpid(), signal.SIGKILL)
        StateStore(Path({str(directory)!r}), replace=die).save(
            State(server_url="https://other.test", fleet_node_id=7)
        )
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True)
    assert result.returncode == -signal.SIGKILL
    assert store.load() == sample()
    assert len(temp_files(directory)) == 1
    store.save(sample(fleet_node_id=43))
    assert temp_files(directory) == []


def test_damaged_state_is_a_configuration_error_that_quotes_nothing(tmp_path: Path) -> None:
    """A damaged state.json is refused with a message that never quotes its content."""
    store = StateStore(tmp_path)
    store.state_path.write_text('{"server_url": "https://gw.test", "api_key": 12, "x": "SECRET')
    with pytest.raises(ConfigurationError) as info:
        store.load()
    assert "SECRET" not in str(info.value)
    store.state_path.write_text('{"server_url": "https://gw.test", "fleet_node_id": "SECRET"}')
    with pytest.raises(ConfigurationError) as info:
        store.load()
    assert "SECRET" not in str(info.value)


def test_lock_is_exclusive_holds_the_pid_and_is_released(tmp_path: Path) -> None:
    """A second lock fails at once naming the holder's pid; after release it succeeds."""
    store = StateStore(tmp_path)
    with store.lock():
        assert store.lock_path.read_text().strip() == str(os.getpid())
        with pytest.raises(StateLocked) as info, store.lock():
            pass
        assert info.value.pid == os.getpid()
        assert str(os.getpid()) in str(info.value)
    with store.lock():
        pass


def test_repr_hides_secrets() -> None:
    """The state's repr never shows the api key, session token or private key."""
    text = repr(sample())
    assert "K" * 43 not in text and "S" * 43 not in text and "cd" * 32 not in text
