"""The state directory (SPEC 5.2): ``state.json`` (load, atomic save) and ``state.lock``.

The directory is opened once per use, with ``O_DIRECTORY | O_NOFOLLOW``, and everything in it
is reached through that descriptor: state.json, state.lock, the temp files of a save and the
fsync of the directory. A directory renamed away or replaced by a link while a command holds
it changes nothing for that command: there is no check by name followed by a use by name.

Refused (:class:`ConfigurationError`, 78) by every command: a state directory that is a
symbolic link or not a directory; a directory or state.json owned by another user or writable
by group or others (someone else could have written it). Looser *read* permissions are
tightened (0700, 0600) by the commands that lock, and only reported by ``status``.

Synchronous on purpose: every operation is a few small syscalls, and a save that cannot be
interrupted half-way by a Trio cancellation is exactly what "never half-written" needs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import attrs

from agent.errors import ConfigurationError, NoState, StateLocked, StateNotSaved
from agent.privatefs import (
    DIR_MODE,
    FILE_MODE,
    link_message,
    open_private_directory,
    require_regular_file,
    require_trusted,
)
from agent.state import State, decode_state, encode_state

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
_TEMP_SUFFIX = ".tmp"


class Replace(Protocol):
    """The rename step of a save, called as ``os.replace`` (a seam for crash tests)."""

    def __call__(self, src: str, dst: str, *, src_dir_fd: int, dst_dir_fd: int) -> None: ...


@attrs.frozen
class StateStore:
    """Where one node's state lives. Each method opens the directory for its own use;
    a command that saves holds one :class:`StateDir` from :meth:`lock` instead."""

    directory: Path
    replace: Replace = os.replace

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def lock_path(self) -> Path:
        return self.directory / LOCK_FILE

    @contextlib.contextmanager
    def open(self, *, create: bool = False) -> Iterator[StateDir]:
        """The checked directory, read-only (nothing is created or tightened unless
        ``create``, which makes it and its missing parents 0700); :class:`NoState` when it
        is missing."""
        try:
            fd = open_private_directory(self.directory, create=create, what="state directory")
        except FileNotFoundError as exc:
            raise NoState(_no_state_message(self.directory)) from exc
        try:
            yield StateDir(self, fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def lock(self, *, create: bool = False) -> Iterator[StateDir]:
        """The directory opened, locked (:class:`StateLocked` when another process holds
        state.lock) and its read permissions tightened, for the commands that save."""
        with self.open(create=create) as directory, directory.locked():
            directory.tighten()
            yield directory

    def load(self) -> State | None:
        """The state, or None when there is none. Read-only: creates and changes nothing."""
        try:
            with self.open() as directory:
                return directory.load()
        except NoState:
            return None

    def load_enrolled(self) -> State:
        """The state of an enrolled node, or :class:`NoState` naming ``fleetnode enroll``."""
        with self.open() as directory:
            return directory.load_enrolled()

    def save(self, state: State) -> None:
        """One save, making the directory if it is missing, without the lock: for tools and
        tests that write a state no command uses (a command saves through the
        :class:`StateDir` it locked)."""
        with self.open(create=True) as directory:
            directory.save(state)


class StateDir:
    """One open state directory; every file operation is relative to its descriptor."""

    def __init__(self, store: StateStore, fd: int) -> None:
        self._store = store
        self._fd = fd

    @property
    def path(self) -> Path:
        return self._store.directory

    def load(self) -> State | None:
        """The state, or None when there is no state.json."""
        fd = self._open_state_file()
        if fd is None:
            return None
        try:
            with os.fdopen(fd, "rb", closefd=False) as source:
                raw = source.read()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {self._store.state_path}: {exc.strerror}"
            ) from exc
        finally:
            os.close(fd)
        return decode_state(raw)

    def load_enrolled(self) -> State:
        """The state of an enrolled node, or :class:`NoState` naming ``fleetnode enroll``."""
        state = self.load()
        if state is None or not state.fleet_node_id:
            raise NoState(_no_state_message(self.path))
        return state

    def loose_read_permissions(self) -> list[str]:
        """What group or others may read here (``status`` reports it, the lock tightens it)."""
        return self._loose(tighten=False)

    def tighten(self) -> None:
        """Tighten the directory to 0700 and state.json to 0600 (a link in place of
        state.json is left to :meth:`load`, which refuses it, and a save, which replaces it)."""
        self._loose(tighten=True)

    def _loose(self, *, tighten: bool) -> list[str]:
        file_fd = self._open_state_file(links_ok=True)
        targets = [(self._fd, f"state directory {self.path}", DIR_MODE)]
        if file_fd is not None:
            targets.append((file_fd, str(self._store.state_path), FILE_MODE))
        found = []
        try:
            for fd, name, private in targets:
                mode = stat.S_IMODE(os.fstat(fd).st_mode)
                if mode & 0o077:
                    found.append(f"{name} is readable by group or others ({mode:04o})")
                    if tighten:
                        logger.warning("tightening permissions of %s to %04o", name, private)
                        os.fchmod(fd, private)
        finally:
            if file_fd is not None:
                os.close(file_fd)
        return found

    def save(self, state: State) -> None:
        """Atomically replace ``state.json``: temp file, fsync, rename, fsync of the directory.

        :class:`StateNotSaved` (naming the cause, e.g. a full disk) when it cannot: the
        previous ``state.json`` is then unchanged and no temp file is left behind.
        """
        self.write_file(STATE_FILE, encode_state(state), replace=self._store.replace)

    def write_file(self, name: str, data: bytes, *, replace: Replace = os.replace) -> None:
        """Atomically replace the private file ``name`` (0600) of this directory with
        ``data``, as :meth:`save` does for state.json (which passes the store's ``replace``
        seam); temp files an earlier write of ``name`` left behind are removed first."""
        target = self.path / name
        try:
            self._remove_stale_temp_files(name)
            fd, temp = self._create_temp_file(name)
        except OSError as exc:
            raise _not_saved(target, exc) from exc
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            replace(temp, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self._fd)
            raise _not_saved(target, exc) from exc
        try:
            os.fsync(self._fd)
        except OSError as exc:
            # The rename happened: the new file is in place, only its durability is unsure.
            raise _not_saved(target, exc, replaced=True) from exc

    def fileno(self) -> int:
        """The directory's descriptor, for readers of its other files (health.json)."""
        return self._fd

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``state.lock`` (non-blocking exclusive flock, holding our pid) or StateLocked."""
        lock_path = self._store.lock_path
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(LOCK_FILE, flags, FILE_MODE, dir_fd=self._fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigurationError(link_message(lock_path)) from exc
            raise ConfigurationError(f"cannot open {lock_path}: {exc.strerror}") from exc
        try:
            # A hard link (or a FIFO, a device) would have us truncate and write someone
            # else's file below.
            require_regular_file(fd, lock_path, single_link=True)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ConfigurationError(f"cannot lock {lock_path}") from exc
                raise StateLocked(str(lock_path), _read_pid(fd)) from None
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

    def _open_state_file(self, *, links_ok: bool = False) -> int | None:
        """state.json opened for reading and checked, or None when there is none (or, with
        ``links_ok``, when it is a link: the caller leaves that to :meth:`load`)."""
        path = self._store.state_path
        # O_NOFOLLOW: a link is refused by the open itself (no check-then-read window);
        # O_NONBLOCK: a FIFO planted here cannot make the open hang.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(STATE_FILE, flags, dir_fd=self._fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                if links_ok:
                    return None
                raise ConfigurationError(link_message(path)) from exc
            raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            require_regular_file(fd, path)
            require_trusted(os.fstat(fd), path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _create_temp_file(self, target: str) -> tuple[int, str]:
        """A new private temp file beside ``target``: (descriptor, name)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for _ in range(100):
            name = f"{_temp_prefix(target)}{secrets.token_hex(6)}{_TEMP_SUFFIX}"
            try:
                fd = os.open(name, flags, FILE_MODE, dir_fd=self._fd)
            except FileExistsError:
                continue
            try:
                os.fchmod(fd, FILE_MODE)  # whatever the umask: the owner must read it back
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._fd)
                raise
            return fd, name
        raise FileExistsError(errno.EEXIST, "no unused temporary file name")

    def _remove_stale_temp_files(self, target: str) -> None:
        """Remove temp files a crashed save of ``target`` left behind (commands save with the
        lock held; only ``target``'s own: the daemon writes two files at once)."""
        prefix = _temp_prefix(target)
        for name in os.listdir(self._fd):
            if name.startswith(prefix) and name.endswith(_TEMP_SUFFIX):
                logger.info("removing %s left behind by an interrupted save", name)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=self._fd)


def _temp_prefix(target: str) -> str:
    return f".{target}."  # ".state.json.": what a crashed save of state.json leaves


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def _not_saved(path: Path, exc: OSError, *, replaced: bool = False) -> StateNotSaved:
    # The cause as the OS words it ("No space left on device"): what the operator needs.
    what = "state" if path.name == STATE_FILE else path.name
    outcome = (
        f"the new {what} is in place but may not survive a power loss"
        if replaced
        else f"the previous {what} is unchanged"
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
