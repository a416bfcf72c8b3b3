"""The state directory: ``state.json`` (load, atomic save) and ``state.lock`` (SPEC 5.2).

Synchronous on purpose: every operation is a few small syscalls, and a save that cannot be
interrupted half-way by a Trio cancellation is exactly what "never half-written" needs.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import cattrs

from agent.errors import ConfigurationError, NoState, StateLocked, StateNotSaved
from fleetwire.codec import format_timestamp

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
_TEMP_PREFIX = ".state.json."
_TEMP_SUFFIX = ".tmp"
_DIR_MODE = 0o700
_FILE_MODE = 0o600


@attrs.frozen
class Session:
    token: str = attrs.field(repr=False)
    expires_at: datetime.datetime


@attrs.frozen
class State:
    """Everything the node keeps between runs; secrets are hidden from ``repr``."""

    server_url: str
    allow_insecure_transport: bool = False
    ca_file: str | None = None
    fleet_node_id: int = 0
    name: str = ""
    identity_fingerprint: str = ""
    identity_public_key: str = ""
    identity_private_key: str = attrs.field(default="", repr=False)
    api_key: str = attrs.field(default="", repr=False)
    session_token: str = attrs.field(default="", repr=False)
    session_expires_at: datetime.datetime | None = None

    @property
    def session(self) -> Session | None:
        if not self.session_token or self.session_expires_at is None:
            return None
        return Session(self.session_token, self.session_expires_at)

    def with_session(self, session: Session) -> State:
        return attrs.evolve(
            self, session_token=session.token, session_expires_at=session.expires_at
        )


def _make_converter() -> cattrs.Converter:
    """The one converter of the state-file boundary."""
    converter = cattrs.Converter(detailed_validation=False)

    def structure_timestamp(value: Any, _: type) -> datetime.datetime:
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 timestamp")
        parsed = datetime.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("must carry a time zone")
        return parsed.astimezone(datetime.UTC)

    def structure_str(value: Any, _: type) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value

    def structure_int(value: Any, _: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        return value

    def structure_bool(value: Any, _: type) -> bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value

    converter.register_structure_hook(datetime.datetime, structure_timestamp)
    converter.register_structure_hook(str, structure_str)
    converter.register_structure_hook(int, structure_int)
    converter.register_structure_hook(bool, structure_bool)
    converter.register_unstructure_hook(datetime.datetime, format_timestamp)
    return converter


_converter = _make_converter()


def encode_state(state: State) -> bytes:
    return (json.dumps(_converter.unstructure(state), indent=2, sort_keys=True) + "\n").encode()


def decode_state(raw: bytes) -> State:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return _converter.structure(data, State)
    except (
        ValueError,
        TypeError,
        KeyError,
        RecursionError,
        OverflowError,  # a timestamp that leaves years 1..9999 once moved to UTC
        cattrs.BaseValidationError,
    ) as exc:
        # The message never quotes the file: it holds secrets.
        raise ConfigurationError(
            f"{STATE_FILE} is damaged ({type(exc).__name__}); re-enroll with `fleetnode enroll`"
        ) from exc


Replace = Callable[[str, str], None]


@attrs.frozen
class StateStore:
    """One state directory. ``replace`` is the rename step of a save (a seam for crash tests)."""

    directory: Path
    replace: Replace = os.replace

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def lock_path(self) -> Path:
        return self.directory / LOCK_FILE

    def _refuse_symlink(self) -> None:
        if self.directory.is_symlink():
            raise ConfigurationError(
                f"state directory {self.directory} is a symbolic link; refusing to use it"
            )

    def prepare(self, *, create: bool) -> None:
        """Check the directory (creating it only if ``create``) and tighten it to 0700."""
        self._refuse_symlink()
        if not self.directory.exists():
            if not create:
                raise NoState(_no_state_message(self.directory))
            self.directory.mkdir(mode=_DIR_MODE, parents=True)
        info = self.directory.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise ConfigurationError(f"state directory {self.directory} is not a directory")
        if stat.S_IMODE(info.st_mode) & 0o077:
            logger.warning("tightening permissions of %s to 0700", self.directory)
            self.directory.chmod(_DIR_MODE)
        self._tighten_state_file()

    def _tighten_state_file(self) -> None:
        """A state.json others may read is tightened to 0600 (a link is left to ``load``,
        which refuses it: chmod would follow it)."""
        try:
            info = self.state_path.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
            logger.warning("tightening permissions of %s to 0600", self.state_path)
            self.state_path.chmod(_FILE_MODE)

    def load(self) -> State | None:
        """The state, or None when there is none. Read-only: creates and changes nothing."""
        self._refuse_symlink()
        # O_NOFOLLOW: a link is refused by the open itself (no check-then-read window);
        # O_NONBLOCK: a FIFO planted here cannot make the open hang.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.state_path, flags)
        except FileNotFoundError:
            return None
        except NotADirectoryError as exc:
            raise ConfigurationError(f"{self.directory} is not a directory") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigurationError(_link_message(self.state_path)) from exc
            raise ConfigurationError(f"cannot read {self.state_path}: {exc.strerror}") from exc
        try:
            _require_regular_file(fd, self.state_path)
            with os.fdopen(fd, "rb", closefd=False) as source:
                raw = source.read()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {self.state_path}: {exc.strerror}") from exc
        finally:
            os.close(fd)
        return decode_state(raw)

    def load_enrolled(self) -> State:
        """The state of an enrolled node, or :class:`NoState` naming ``fleetnode enroll``."""
        state = self.load()
        if state is None or not state.fleet_node_id:
            raise NoState(_no_state_message(self.directory))
        return state

    def save(self, state: State) -> None:
        """Atomically replace ``state.json``: temp file, fsync, rename, fsync of the directory.

        :class:`StateNotSaved` (naming the cause, e.g. a full disk) when it cannot: the
        previous ``state.json`` is then unchanged and no temp file is left behind.
        """
        try:
            self.remove_stale_temp_files()
            fd, temp = tempfile.mkstemp(
                prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.directory
            )
        except OSError as exc:
            raise _not_saved(self.state_path, exc) from exc
        try:
            with os.fdopen(fd, "wb") as out:  # mkstemp creates it 0600
                out.write(encode_state(state))
                out.flush()
                os.fsync(out.fileno())
            self.replace(temp, str(self.state_path))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise _not_saved(self.state_path, exc) from exc
        try:
            _fsync_directory(self.directory)
        except OSError as exc:
            # The rename happened: the new file is in place, only its durability is unsure.
            raise _not_saved(self.state_path, exc, replaced=True) from exc

    def remove_stale_temp_files(self) -> None:
        """Remove temp files a crashed save left behind (only called with the lock held)."""
        for stale in self.directory.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            logger.info("removing %s left behind by an interrupted save", stale.name)
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``state.lock`` (non-blocking exclusive flock, holding our pid) or StateLocked."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.lock_path, flags | os.O_NONBLOCK, _FILE_MODE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigurationError(_link_message(self.lock_path)) from exc
            raise ConfigurationError(f"cannot open {self.lock_path}: {exc.strerror}") from exc
        try:
            # A hard link (or a FIFO, a device) would have us truncate and write someone
            # else's file below.
            _require_regular_file(fd, self.lock_path, single_link=True)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ConfigurationError(f"cannot lock {self.lock_path}") from exc
                raise StateLocked(str(self.lock_path), _read_pid(fd)) from None
            # The pid only feeds the "locked by" message: a full disk must not stop a
            # daemon from starting (the lock is the flock, not the file's content).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing releases the flock


def _link_message(path: Path) -> str:
    return f"{path} is a symbolic link; refusing to use it (remove it and retry)"


def _require_regular_file(fd: int, path: Path, *, single_link: bool = False) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigurationError(f"{path} is not a regular file; refusing to use it")
    if single_link and info.st_nlink != 1:
        raise ConfigurationError(
            f"{path} has {info.st_nlink} hard links; refusing to use it (remove it and retry)"
        )


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def _fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _not_saved(path: Path, exc: OSError, *, replaced: bool = False) -> StateNotSaved:
    # The cause as the OS words it ("No space left on device"): what the operator needs.
    outcome = (
        "the new state is in place but may not survive a power loss"
        if replaced
        else "the previous state is unchanged"
    )
    return StateNotSaved(
        f"cannot save {path}: {exc.strerror or type(exc).__name__}; {outcome} "
        "(free disk space or fix permissions, then retry)"
    )


def _no_state_message(directory: Path) -> str:
    return (
        f"no enrolled state in {directory}: enroll this node first with "
        "`fleetnode enroll --server-url URL`"
    )
