"""``check`` and ``status`` facing a health.json they must not trust, or a pid that is not
the daemon's (SPEC 5.6, 5.11): one line saying so, exit 1 for check, never a traceback."""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from agent.health import HEALTH_FILE, Health, encode_health
from agent.statedir import StateStore
from tests.support.commands import Cli
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import T0, FakeGateway

pytestmark = pytest.mark.trio

AS_ROOT = os.geteuid() == 0


def fresh_health(pid: int) -> Health:
    """A daemon that heartbeated 5 s ago (the commands' clock reads T0 at time 0)."""
    return Health(
        pid=pid,
        started_at=T0 - datetime.timedelta(hours=1),
        heartbeat_interval_seconds=30.0,
        last_heartbeat_at=T0 - datetime.timedelta(seconds=5),
        last_attempt_at=T0 - datetime.timedelta(seconds=5),
    )


def write_health(store: StateStore, content: bytes | Health, mode: int = 0o600) -> Path:
    path = store.directory / HEALTH_FILE
    raw = encode_health(content) if isinstance(content, Health) else content
    path.write_bytes(raw)
    path.chmod(mode)
    return path


@contextlib.contextmanager
def other_process() -> Iterator[int]:
    """The pid of a live process that is not a fleetnode daemon."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def dead_pid() -> int:
    """A pid whose process has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _link(store: StateStore) -> str:
    target = store.directory.parent / "elsewhere.json"
    target.write_bytes(encode_health(fresh_health(os.getpid())))
    (store.directory / HEALTH_FILE).symlink_to(target)
    return "health.json is a symbolic link; not trusted"


def _fifo(store: StateStore) -> str:
    os.mkfifo(store.directory / HEALTH_FILE, 0o600)
    return "health.json is not a regular file; not trusted"


def _directory(store: StateStore) -> str:
    (store.directory / HEALTH_FILE).mkdir(mode=0o700)
    return "health.json is not a regular file; not trusted"


def _world_writable(store: StateStore) -> str:
    write_health(store, fresh_health(os.getpid()), 0o666)
    return "health.json is writable by group or others (0666); not trusted"


def _group_writable(store: StateStore) -> str:
    write_health(store, fresh_health(os.getpid()), 0o620)
    return "health.json is writable by group or others (0620); not trusted"


def _another_owner(store: StateStore) -> str:
    path = write_health(store, fresh_health(os.getpid()))
    os.chown(path, 12345, 12345)
    return f"health.json is owned by uid 12345, not by the state directory's owner (uid {os.geteuid()}); not trusted"  # noqa: E501


def _damaged(raw: bytes, reason: str) -> Callable[[StateStore], str]:
    def make(store: StateStore) -> str:
        write_health(store, raw)
        return f"health.json is damaged ({reason})"

    return make


UNTRUSTED = {
    "symlink": _link,
    "fifo": _fifo,
    "directory": _directory,
    "world-writable": _world_writable,
    "group-writable": _group_writable,
    "not JSON": _damaged(b'{"pid": 1', "not JSON"),
    "not an object": _damaged(b"[1, 2]", "not a JSON object"),
    "missing pid": _damaged(b'{"started_at": "2026-11-26T12:00:00Z"}', "no pid"),
    "pid as text": _damaged(
        encode_health(fresh_health(os.getpid())).replace(
            f'"pid": {os.getpid()}'.encode(), b'"pid": "1"'
        ),
        "must be an integer",
    ),
    "negative pid": _damaged(
        encode_health(fresh_health(os.getpid())).replace(
            f'"pid": {os.getpid()}'.encode(), b'"pid": -4'
        ),
        "pid must be positive",
    ),
    "naive time": _damaged(
        encode_health(fresh_health(os.getpid())).replace(b"Z", b""), "must carry a time zone"
    ),
    "nested too deep": _damaged(b"[" * 20000 + b"]" * 20000, "nested too deep"),
    "too large": _damaged(b" " * (65 * 1024), "larger than 65536 bytes"),
}
if AS_ROOT:
    UNTRUSTED["another owner"] = _another_owner


@pytest.mark.parametrize("make", UNTRUSTED.values(), ids=UNTRUSTED.keys())
async def test_an_untrusted_health_file_is_named_and_fails_check(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    make: Callable[[StateStore], str],
) -> None:
    """A health.json that is a link, a FIFO, a directory, writable by others, owned by
    someone else or damaged: check prints why on one line and exits 1, status shows it and
    exits 0, with no traceback, and the file is left as it was."""
    make_enrolled_state(store, gateway)
    with store.lock():  # a live daemon holds the lock: only the file is wrong
        reason = make(store)
        before = os.lstat(store.directory / HEALTH_FILE)
        checked = await cli("check")
        status = await cli("status")
    assert checked.code == 1
    assert checked.stdout.count("\n") == 1
    assert checked.stdout.rstrip("\n").endswith(reason), checked.stdout
    assert checked.stdout.startswith(str(store.directory))
    assert status.code == 0
    assert f"daemon: {store.directory / HEALTH_FILE}" in status.stdout
    assert reason in status.stdout
    for outcome in (checked, status):
        assert "Traceback" not in outcome.stdout + outcome.stderr
    after = os.lstat(store.directory / HEALTH_FILE)
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (
        before.st_ino,
        before.st_mode,
        before.st_mtime_ns,
    )


async def test_a_pid_reused_by_another_process_is_not_the_daemon(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """health.json naming a live process that is not the daemon (the daemon died, its pid
    was reused) fails check even with a fresh heartbeat, also while another process holds the
    state lock; status shows that pid as not running."""
    make_enrolled_state(store, gateway)
    with other_process() as pid:
        write_health(store, fresh_health(pid))
        checked = await cli("check")
        with store.lock():
            locked = await cli("check")
        status = await cli("status")
    expected = (
        f"no daemon running (health.json is from pid {pid}, which no longer runs; "
        "last heartbeat 5s ago)\n"
    )
    assert (checked.code, checked.stdout) == (1, expected)
    assert (locked.code, locked.stdout) == (1, expected)
    assert f"daemon_pid: {pid} (not running)\n" in status.stdout


async def test_a_daemon_that_died_without_cleaning_up_is_not_running(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """health.json left by a daemon killed with -9 (its pid gone, state.lock still holding
    that pid): check exits 1 saying no daemon runs."""
    make_enrolled_state(store, gateway)
    pid = dead_pid()
    (store.directory / "state.lock").write_text(f"{pid}\n")
    write_health(store, fresh_health(pid))
    checked = await cli("check")
    assert checked.code == 1
    assert checked.stdout.startswith(f"no daemon running (health.json is from pid {pid},")


async def test_the_process_holding_the_state_lock_is_the_daemon(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A pid that holds state.lock open and heartbeated 5 s ago passes check (which takes
    no lock itself: it works while the lock is held) and status shows it running."""
    make_enrolled_state(store, gateway)
    write_health(store, fresh_health(os.getpid()))
    with store.lock():
        checked = await cli("check")
        status = await cli("status")
    assert checked.code == 0
    assert checked.stdout == f"ok: pid {os.getpid()}, last heartbeat 5s ago (limit 1m30s)\n"
    assert f"daemon_pid: {os.getpid()} (running)\n" in status.stdout
    assert "last_heartbeat: 5s ago (2026-11-26T11:59:55Z)\n" in status.stdout


async def test_no_health_file_or_no_state_directory_fails_check_and_creates_nothing(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """Without health.json, or without a state directory at all, check exits 1 saying no
    daemon runs, and creates nothing; status shows no daemon lines."""
    missing = await cli("check")
    assert missing.code == 1
    assert missing.stdout == f"no daemon running (no state directory {store.directory})\n"
    assert not store.directory.exists()

    make_enrolled_state(store, gateway)
    before = sorted(p.name for p in store.directory.iterdir())
    empty = await cli("check")
    status = await cli("status")
    assert empty.code == 1
    assert empty.stdout == f"no daemon running (no health.json in {store.directory})\n"
    assert "daemon" not in status.stdout
    assert sorted(p.name for p in store.directory.iterdir()) == before


@pytest.mark.parametrize("mode", [0o777, 0o770])
async def test_a_state_directory_others_may_write_is_not_trusted(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    mode: int,
) -> None:
    """A state directory writable by group or others fails check (exit 1, not 78)."""
    make_enrolled_state(store, gateway)
    write_health(store, fresh_health(os.getpid()))
    store.directory.chmod(mode)
    checked = await cli("check")
    assert checked.code == 1
    assert checked.stdout == (
        f"no daemon running (state directory {store.directory} is writable by group or "
        f"others ({mode:04o}); not trusted)\n"
    )


async def test_a_symlinked_state_directory_is_not_trusted(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """check refuses a state directory that is a symbolic link (exit 1)."""
    real = store.directory.parent / "real"
    real.mkdir(mode=0o700)
    store.directory.symlink_to(real)
    checked = await cli("check")
    assert checked.code == 1
    assert "is a symbolic link; not trusted" in checked.stdout


@pytest.mark.skipif(not AS_ROOT, reason="needs root to give files to another user")
async def test_root_checks_a_daemon_running_as_another_user(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """As root (a supervisord event listener), check reads the health of a state directory
    owned by the daemon's user rather than refusing it."""
    make_enrolled_state(store, gateway)
    path = write_health(store, attrs.evolve(fresh_health(os.getpid())))
    for owned in (store.directory, path):
        os.chown(owned, 12345, 12345)
    checked = await cli("check")
    assert checked.code == 1
    assert checked.stdout.startswith(f"no daemon running (health.json is from pid {os.getpid()}")
