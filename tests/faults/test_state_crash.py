"""Faults of the state file: kill -9 in the middle of saves, and a full disk.

SPEC 5.2: a crash at any instant leaves either the old or the new complete file; a save
that cannot complete (here: no space left) is a clear error and the old state stays.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import errno
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from agent.errors import StateNotSaved
from agent.statedir import StateStore
from tests.faults.state_versions import number, version
from tests.support.commands import run_command, secrets_seen
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import FakeGateway, virtual_wall_clock

KILLS = 200
REPO = Path(__file__).resolve().parents[2]
TMPFS_SIZE = "64k"


@pytest.mark.faults
def test_kill_9_at_random_instants_of_saves_leaves_a_whole_old_or_new_state(
    tmp_path: Path,
) -> None:
    """200 times a process saving the state in a loop is killed with SIGKILL after a random
    delay; every time state.json loads and is exactly one of the versions written, never
    older than the one before the kill."""
    directory = tmp_path / "state"
    store = StateStore(directory)
    store.save(version(0))
    rng = random.Random()
    outcomes: collections.Counter[str] = collections.Counter()
    last = 0
    zygote = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.state_versions", str(directory)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    try:
        for _ in range(KILLS):
            zygote.stdin.write("go\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            # The fault itself: SIGKILL at a random instant of the child's first saves.
            time.sleep(rng.uniform(0.0, 0.03))
            os.kill(pid, signal.SIGKILL)
            status = int(zygote.stdout.readline())
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status

            temp_files = list(directory.glob(".state.json.*.tmp"))
            outcomes["kill left a temp file (mid-save)" if temp_files else "kill between"] += 1
            n = number(store.load() or version(-1))
            assert n >= last, f"state went back from version {last} to {n}"
            outcomes["state advanced" if n > last else "state unchanged"] += 1
            last = n
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=10)
        zygote.stdout.close()
    print(f"\n{KILLS} kills: {dict(outcomes)}; last version {last}")
    assert outcomes["kill left a temp file (mid-save)"] > 0, "no kill landed inside a save"
    assert outcomes["state advanced"] > 0, "no child ever completed a save"
    store.save(version(last + 1))  # the next save sweeps what the last kill left
    assert not list(directory.glob(".state.json.*.tmp"))


@attrs.frozen
class FullDisk:
    """A state directory whose disk can be filled: a real 64 KiB tmpfs when we may mount
    one (root), else a normal directory whose rename step fails with ENOSPC once filled."""

    directory: Path
    real: bool
    filled: list[bool] = attrs.field(factory=lambda: [False])

    def store(self) -> StateStore:
        if self.real:
            return StateStore(self.directory)

        def replace(source: str, target: str, **dir_fds: int) -> None:
            if self.filled[0]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.replace(source, target, **dir_fds)

        return StateStore(self.directory, replace=replace)

    def fill(self) -> None:
        self.filled[0] = True
        if not self.real:
            return
        with (self.directory.parent / "filler").open("wb", buffering=0) as filler:
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 4096)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    real = False
    if os.geteuid() == 0:
        mounted = subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={TMPFS_SIZE},mode=0700",
                "tmpfs",
                str(mountpoint),
            ],
            capture_output=True,
            check=False,
        )
        real = mounted.returncode == 0
    try:
        yield FullDisk(mountpoint / "state", real)
    finally:
        if real:
            subprocess.run(["umount", str(mountpoint)], check=True)


def test_save_on_a_full_disk_is_a_clear_error_and_keeps_the_old_state(
    full_disk: FullDisk,
) -> None:
    """A save on a full disk raises StateNotSaved saying "No space left on device"; the
    old state.json still loads unchanged and no temp file is left behind."""
    store = full_disk.store()
    store.save(version(1))
    full_disk.fill()

    with pytest.raises(StateNotSaved) as caught:
        store.save(version(2))

    message = str(caught.value)
    assert "No space left on device" in message
    assert "previous state is unchanged" in message
    assert version(2).api_key not in message and version(2).session_token not in message
    assert number(store.load() or version(-1)) == 1
    assert not list(store.directory.glob(".state.json.*.tmp"))


@pytest.mark.trio
async def test_refresh_on_a_full_disk_exits_78_and_keeps_the_old_state(
    full_disk: FullDisk,
) -> None:
    """``fleetnode refresh`` whose save meets a full disk exits 78 with a clear message and
    no traceback, and the stored credentials stay as they were."""
    gateway = FakeGateway()
    store = full_disk.store()
    before = make_enrolled_state(store, gateway)
    full_disk.fill()

    outcome = await run_command(store, gateway.transport, "refresh", seed=11)

    assert outcome.code == 78, outcome.stderr
    assert "No space left on device" in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert store.load() == before
    assert not secrets_seen(before, gateway, outcome.stderr)


@pytest.mark.trio
async def test_daemon_keeps_heartbeating_when_its_new_session_cannot_be_saved(
    full_disk: FullDisk, autojump_clock: trio.testing.MockClock
) -> None:
    """When the disk is full as ``run`` refreshes its session, it logs that the save failed
    and keeps heartbeating with the new session; state.json keeps the old one."""
    gateway = FakeGateway()
    store = full_disk.store()
    before = make_enrolled_state(
        store, gateway, session_expires_at=virtual_wall_clock() + datetime.timedelta(minutes=30)
    )
    full_disk.fill()

    outcome = await run_command(store, gateway.transport, "run", seed=11, seconds=2 * 3600)

    assert outcome.code is None, outcome.stderr
    assert "No space left on device" in outcome.stderr
    new_token = gateway.issued_tokens[-1]
    assert new_token != before.session_token
    beats = [call for call in gateway.calls_to("UploadHeartbeat") if call.status == 200]
    assert len(beats) >= 2 * 3600 / gateway.interval_seconds - 1
    assert {call.authorization for call in beats} == {f"Bearer {new_token}"}
    assert store.load() == before
    assert not secrets_seen(before, gateway, outcome.stderr)
