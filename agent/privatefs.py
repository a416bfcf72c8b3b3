"""Private files and directories: opened without following a link, refused when another
user owns them or may write them, made 0700 whatever the umask.

What is refused raises :class:`ConfigurationError` (78): its content cannot be trusted, and
tightening it would only hide that someone else could have written it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from agent.errors import ConfigurationError

DIR_MODE = 0o700
FILE_MODE = 0o600
_WRITABLE_BY_OTHERS = 0o022
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_private_directory(path: Path, *, create: bool, what: str) -> int:
    """``path`` opened with O_NOFOLLOW and checked (made first, with its missing parents, if
    ``create``). FileNotFoundError when it is missing; ``what`` names it in messages."""
    try:
        fd = _make_and_open(path) if create else os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP) and path.is_symlink():
            # Only to word the message: the open itself refused the link.
            raise ConfigurationError(
                f"{what} {path} is a symbolic link; refusing to use it"
            ) from exc
        if exc.errno == errno.ENOTDIR:
            raise ConfigurationError(f"{what} {path} is not a directory") from exc
        raise ConfigurationError(f"cannot open {what} {path}: {exc.strerror}") from exc
    try:
        require_trusted(os.fstat(fd), path, what=f"{what} ")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_and_open(path: Path) -> int:
    """Make ``path`` and its missing parents, each 0700 whatever the umask, and open it.

    Each directory is made and opened relative to its parent's descriptor, so none of them
    is reached through a link put in its place meanwhile. Parents that exist are the
    operator's and are followed as they are (``/var/lib`` may well be a link)."""
    missing: list[str] = []
    existing = path
    while not os.path.lexists(existing) and existing.parent != existing:
        missing.append(existing.name)
        existing = existing.parent
    if not missing:
        return os.open(path, _DIR_FLAGS)
    fd = os.open(existing, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in reversed(missing):
            try:
                os.mkdir(name, DIR_MODE, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False  # made by someone else meanwhile: checked like any other
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            if made:
                os.fchmod(fd, DIR_MODE)  # mkdir's mode went through the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def require_trusted(info: os.stat_result, path: Path, what: str = "") -> None:
    """Refuse what another user owns or may write: its content cannot be trusted."""
    uid = os.geteuid()
    if info.st_uid != uid:
        raise ConfigurationError(
            f"{what}{path} is owned by uid {info.st_uid}, not by this user (uid {uid}); "
            "refusing to trust it"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & _WRITABLE_BY_OTHERS:
        raise ConfigurationError(
            f"{what}{path} is writable by group or others ({mode:04o}); refusing to trust "
            "it (check its content, then make it private, or re-enroll)"
        )


def link_message(path: Path) -> str:
    return f"{path} is a symbolic link; refusing to use it (remove it and retry)"


def require_regular_file(fd: int, path: Path, *, single_link: bool = False) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigurationError(f"{path} is not a regular file; refusing to use it")
    if single_link and info.st_nlink != 1:
        raise ConfigurationError(
            f"{path} has {info.st_nlink} hard links; refusing to use it (remove it and retry)"
        )
