"""``fleetnode enroll --code-file PATH`` (SPEC 5.3): the enrollment code from a file that
cloud-init or configuration management wrote for this node.

The file is trusted only if it could not have been read or written by anyone else: a
regular file (opened without following a link, without blocking on a FIFO), owned by the
user running ``fleetnode``, with no permission for group or others. Anything else is a
:class:`ConfigurationError` (78) naming the file and its mode; the code is never quoted.
The file is left in place (deleting it is the caller's choice: the rollout script removes
it once the node is enrolled).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from agent.errors import ConfigurationError
from agent.privatefs import link_message, require_regular_file

# A code is 43 characters; anything much longer is not a code file.
MAX_BYTES = 4096
_OTHERS = 0o077


def read_code_file(path: Path) -> str:
    """The code the file holds (surrounding whitespace removed)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigurationError(f"code file {link_message(path)}") from exc
        raise ConfigurationError(f"cannot read code file {path}: {exc.strerror}") from exc
    try:
        require_regular_file(fd, path)
        info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        uid = os.geteuid()
        if info.st_uid != uid:
            raise ConfigurationError(
                f"code file {path} is owned by uid {info.st_uid}, not by this user "
                f"(uid {uid}), mode {mode:04o}; refusing it: chown it to the user that runs "
                "fleetnode"
            )
        if mode & _OTHERS:
            raise ConfigurationError(
                f"code file {path} has mode {mode:04o}: group or others may read or write it; "
                f"refusing it: chmod 600 {path} (and consider the code exposed)"
            )
        raw = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise ConfigurationError(f"code file {path} is larger than {MAX_BYTES} bytes")
    try:
        code = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"code file {path} is not UTF-8 text") from exc
    if not code:
        raise ConfigurationError(f"code file {path} is empty")
    if any(c.isspace() for c in code):
        raise ConfigurationError(f"code file {path} holds more than one word; put the code alone")
    return code
