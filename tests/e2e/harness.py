"""The e2e harness: real processes with their logs in files, bounded waits, and a secret ledger.

Every process a test starts goes through :class:`Harness`, which writes its stdout and
stderr to files (no pipe can fill up and block it), and at teardown stops what is still
running (SIGTERM, then SIGKILL) and reaps it, so no test leaks a process or a descriptor.
The harness also keeps a ledger of every secret the test handled and of every log the
processes wrote; :meth:`Harness.leaked_secrets` says which secret ended up in which log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.1
STOP_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 30.0
BIN = Path(sys.executable).parent
# Secrets whose shape we know even when a test never saw the value (the demo's, say).
SECRET_SHAPES = (
    re.compile(r"fleetadm_[0-9a-f]{8}_[A-Za-z0-9_-]{43}"),
    re.compile(r"fleet_[0-9a-f]{8}_[A-Za-z0-9_-]{43}"),
)


def program(name: str) -> str:
    """A console script of this environment (the venv tox or the developer made)."""
    path = BIN / name
    assert path.exists(), f"{path} is missing: install the project with its [test] extra"
    return str(path)


def deployed_sample(
    sample: Path, replacements: Mapping[str, str], occurrences: Mapping[str, int] | None = None
) -> str:
    """A deploy/ sample with only its site-specific literals replaced, each of which must
    occur exactly once (or as often as ``occurrences`` says, e.g. a path two programs share):
    the tested file and an operator's copy stay the same file."""
    text = sample.read_text()
    for literal, value in replacements.items():
        times = (occurrences or {}).get(literal, 1)
        assert text.count(literal) == times, f"{literal!r} should occur {times}x in {sample}"
        text = text.replace(literal, value)
    return text


def free_port() -> int:
    """A port the kernel just handed out on loopback (free until someone else binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child: ours without FLEET_*/FLEETNODE_* settings that could
    leak in from the caller's shell, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "FLEETNODE_"))}
    env.update(extra)
    return env


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    what: str,
    detail: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``predicate`` every 0.1 s until it returns something truthy, and return that;
    fail after ``timeout`` seconds saying what we waited for (and ``detail()``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = detail()
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what}" + (f"\n{extra}" if extra else "")
            )
        time.sleep(POLL_SECONDS)


class Process:
    """A started child: its Popen, and its log file (stdout and stderr together, unless
    stderr went to its own file, ``errlog``)."""

    def __init__(
        self, name: str, popen: subprocess.Popen[bytes], log: Path, errlog: Path | None = None
    ) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        self.errlog = errlog

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self, since: int = 0) -> str:
        """The log from byte offset ``since`` (see :meth:`size`)."""
        with self.log.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def size(self) -> int:
        """The log's length now: a mark for :meth:`text`."""
        return self.log.stat().st_size

    def tail(self, lines: int = 30) -> str:
        logs = [self.log] if self.errlog is None else [self.log, self.errlog]
        return "\n".join(
            f"--- last lines of {log} ---\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in logs
        )

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_exit(self, timeout: float) -> int:
        """The exit code, which must come within ``timeout`` seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running {timeout:g}s later\n{self.tail()}"
            ) from None

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM, then SIGKILL to its whole process group (its children too) if it does
        not go within ``timeout``; always reaped."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        if self.popen.stdin is not None:
            self.popen.stdin.close()


class Harness:
    """One test's processes, logs and secrets, all under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[Process] = []
        self.logs: list[Path] = []
        self.secrets: dict[str, str] = {}  # secret value -> what it is
        self.state_dirs: list[Path] = []
        self._counter = 0

    def path(self, name: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def unique(self, name: str) -> str:
        """``name`` made unique within this harness (tests sharing one gateway need
        distinct node names and directories)."""
        self._counter += 1
        return f"{name}-{self._counter}"

    def log_path(self, name: str) -> Path:
        self._counter += 1
        log = self.path(f"logs/{self._counter:02d}-{name}.log")
        self.logs.append(log)
        return log

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        stdin: int | IO[bytes] = subprocess.DEVNULL,
        cwd: Path | None = None,
        separate_stderr: bool = False,
    ) -> Process:
        """Start ``argv`` with stdout and stderr appended to a new log file (or two)."""
        log = self.log_path(name)
        errlog = self.log_path(f"{name}-stderr") if separate_stderr else None
        with log.open("ab") as out, (errlog or log).open("ab") as err:
            # The child keeps its own descriptors; its own session (process group) lets
            # a leftover be killed together with its children.
            popen = subprocess.Popen(
                list(argv),
                stdin=stdin,
                stdout=out,
                stderr=err,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        process = Process(name, popen, log, errlog)
        self.processes.append(process)
        return process

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        ok: bool = True,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[str]:
        """Run a one-shot command to completion (output captured, never a log)."""
        done = subprocess.run(
            list(argv), capture_output=True, text=True, env=dict(env), timeout=timeout, check=False
        )
        if ok and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv[:3])}... exited {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    def secret(self, value: str, what: str) -> str:
        """Remember ``value`` as a secret that no log may contain; returns it."""
        value = value.strip()
        assert value, f"empty {what}"
        self.secrets[value] = what
        return value

    def watch_state(self, state_dir: Path) -> Path:
        """Secrets in this state directory's state.json join the ledger at the end."""
        self.state_dirs.append(state_dir)
        return state_dir

    def stop_all(self, since: int = 0) -> None:
        """Stop and reap every process started since the ``since``-th, newest first (agents
        before their gateway)."""
        for process in reversed(self.processes[since:]):
            process.stop()

    def assert_no_leaks(self) -> None:
        leaked = self.leaked_secrets()
        assert not leaked, "secrets in logs:\n" + "\n".join(leaked)

    @contextlib.contextmanager
    def scope(self) -> Iterator[Harness]:
        """Processes started inside are stopped at its end, then every log is checked
        (one test's share of a harness a whole module uses)."""
        since = len(self.processes)
        try:
            yield self
        finally:
            self.stop_all(since)
        self.assert_no_leaks()

    def leaked_secrets(self) -> list[str]:
        """Every (secret, log) pair where a known secret, or the shape of an api key or
        admin token, appears in a log; empty when the logs are clean."""
        for state_dir in self.state_dirs:
            for value, what in state_secrets(state_dir).items():
                self.secrets.setdefault(value, what)
        found = []
        for log in self.logs:
            if not log.exists():
                continue
            text = log.read_text(errors="replace")
            found += [f"{what} in {log}" for value, what in self.secrets.items() if value in text]
            found += [
                f"{match.group(0)[:14]}... in {log}"
                for shape in SECRET_SHAPES
                for match in shape.finditer(text)
            ]
        return found


def state_secrets(state_dir: Path) -> dict[str, str]:
    """The secrets a node keeps in ``state.json`` (SPEC 5.2), in every spelling a log
    could plausibly use: the private key as hex and as base64."""
    path = state_dir / "state.json"
    if not path.exists():
        return {}
    state = json.loads(path.read_text())
    found = {}
    for key in ("api_key", "session_token"):
        if state.get(key):
            found[state[key]] = f"{key} of {state_dir.name}"
    private_hex = state.get("identity_private_key") or ""
    if private_hex:
        found[private_hex] = f"identity private key of {state_dir.name}"
        raw = bytes.fromhex(private_hex)
        found[base64.b64encode(raw).decode().rstrip("=")] = (
            f"private key (base64) of {state_dir.name}"
        )
        found[base64.urlsafe_b64encode(raw).decode().rstrip("=")] = (
            f"private key (base64url) of {state_dir.name}"
        )
    return found
