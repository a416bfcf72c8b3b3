"""Reading ``health.json`` from the outside (``check``, ``status``, ``watchdog``): checked
like state.json, and read-only: no lock, no network, nothing created or changed.

What cannot be trusted is reported (:class:`HealthUnreadable`, with a one-line reason),
never raised as a traceback: a symbolic link, not a regular file, a file or directory that
another user owns or that group or others may write, a file that is not what the daemon
writes. Running as root (a supervisord event listener usually does), a state directory
owned by the daemon's user is read as it is: root only reads it, and what it says only
decides whether that user's daemon gets restarted.

Whether the daemon runs is decided by :func:`daemon_runs`: its pid must be a process that
holds ``state.lock`` open, which a pid reused by an unrelated process never does, and a
daemon that died (even by ``kill -9``) no longer does.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from agent.health import HEALTH_FILE, Health, HealthDamaged, decode_health
from agent.statedir import LOCK_FILE

# health.json is a few hundred bytes; anything much larger was not written by the daemon.
MAX_HEALTH_BYTES = 64 * 1024
_WRITABLE_BY_OTHERS = 0o022
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PROC = Path("/proc")


class HealthUnreadable(Exception):
    """health.json (or its directory) cannot be read or trusted; ``str()`` says why."""


def open_state_dir(directory: Path) -> int:
    """The state directory opened for reading its health (the caller closes it)."""
    try:
        fd = os.open(directory, _DIR_FLAGS)
    except FileNotFoundError as exc:
        raise HealthUnreadable(f"no state directory {directory}") from exc
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and directory.is_symlink():
            raise HealthUnreadable(
                f"state directory {directory} is a symbolic link; not trusted"
            ) from exc
        raise HealthUnreadable(f"cannot open state directory {directory}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        euid = os.geteuid()
        if info.st_uid != euid and euid != 0:
            raise HealthUnreadable(
                f"state directory {directory} is owned by uid {info.st_uid}, not by this "
                f"user (uid {euid}); not trusted"
            )
        _require_not_writable_by_others(info, f"state directory {directory}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_health(directory_fd: int, directory: Path) -> Health | None:
    """The health in ``directory``, None when there is no health.json, or
    :class:`HealthUnreadable` saying why it cannot be trusted."""
    path = directory / HEALTH_FILE
    # O_NOFOLLOW: a link is refused by the open itself; O_NONBLOCK: a FIFO cannot hang us.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(HEALTH_FILE, flags, dir_fd=directory_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HealthUnreadable(f"{path} is a symbolic link; not trusted") from exc
        raise HealthUnreadable(f"cannot read {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HealthUnreadable(f"{path} is not a regular file; not trusted")
        owner = os.fstat(directory_fd).st_uid
        if info.st_uid not in (owner, os.geteuid()):
            raise HealthUnreadable(
                f"{path} is owned by uid {info.st_uid}, not by the state directory's owner "
                f"(uid {owner}); not trusted"
            )
        _require_not_writable_by_others(info, str(path))
        raw = os.read(fd, MAX_HEALTH_BYTES + 1)
    except OSError as exc:
        raise HealthUnreadable(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_HEALTH_BYTES:
        raise HealthUnreadable(f"{path} is damaged (larger than {MAX_HEALTH_BYTES} bytes)")
    try:
        return decode_health(raw)
    except HealthDamaged as exc:
        raise HealthUnreadable(f"{path} is damaged ({exc.reason})") from exc


def _require_not_writable_by_others(info: os.stat_result, name: str) -> None:
    mode = stat.S_IMODE(info.st_mode)
    if mode & _WRITABLE_BY_OTHERS:
        raise HealthUnreadable(f"{name} is writable by group or others ({mode:04o}); not trusted")


def daemon_runs(pid: int, directory_fd: int) -> bool:
    """Whether ``pid`` is a live process holding this directory's ``state.lock`` open.

    Only the process that took the lock keeps the file open (a command that finds it
    locked closes it at once), so a pid reused by another process, a zombie, or a pid
    whose daemon was killed without cleaning up, all answer False. Without /proc (not
    Linux) only "a process with this pid exists" can be known.
    """
    try:
        lock = os.stat(LOCK_FILE, dir_fd=directory_fd, follow_symlinks=False)
    except OSError:
        return False  # no lock file: no daemon ever ran here
    if not stat.S_ISREG(lock.st_mode):
        return False
    fds = PROC / str(pid) / "fd"
    try:
        names = os.listdir(fds)
    except FileNotFoundError:
        if not (PROC / "self" / "fd").is_dir():
            return _pid_exists(pid)
        return False
    except OSError:
        return False  # another user's process: the daemon runs as the directory's owner
    for name in names:
        try:
            info = os.stat(fds / name)
        except OSError:
            continue  # closed meanwhile
        if (info.st_dev, info.st_ino) == (lock.st_dev, lock.st_ino):
            return True
    return False


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True
