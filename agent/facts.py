"""Node facts (SPEC 4.11): what the node says about itself, and when it says it.

The daemon sends ``facts`` with its first heartbeat after start and whenever they change,
not otherwise. A gateway that refuses them (``invalid_argument``: too long, not UTF-8 by
its rules) does not stop the heartbeats: they go on without facts, and that is logged once.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
import socket
import unicodedata
from collections.abc import Callable
from pathlib import Path

from fleetwire.messages import MAX_FACT_CHARS, NodeFacts

logger = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
DISTRIBUTION = "fleetnode"

# What the daemon asks before each heartbeat (the test seam: tests fake the boot id).
FactsSource = Callable[[], NodeFacts]


def read_boot_id() -> str:
    """Linux's id of the current boot; empty elsewhere (or when /proc is not there).

    A read of a /proc pseudo-file: no disk is involved, so it may run on the event loop."""
    try:
        return BOOT_ID_PATH.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


@functools.cache
def agent_version() -> str:
    """The installed package's version, read once: the code running is the code loaded."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def os_description() -> str:
    """``Linux 6.1.0 x86_64``: system, kernel release, machine."""
    uname = platform.uname()
    return " ".join(part for part in (uname.system, uname.release, uname.machine) if part)


def gather_facts(boot_id: Callable[[], str] = read_boot_id) -> NodeFacts:
    """The facts as they are now. The host name is asked every time (it can change while
    the daemon runs); the rest cannot change without a restart or a reboot."""
    return NodeFacts(
        agent_version=printable(agent_version()),
        hostname=printable(socket.gethostname()),
        os=printable(os_description()),
        boot_id=printable(boot_id()),
        python_version=printable(platform.python_version()),
    )


def printable(text: str) -> str:
    """``text`` as the wire allows a fact: control characters and undecodable bytes (lone
    surrogates from the OS's surrogateescape) become U+FFFD, and it is cut to 255."""
    cleaned = "".join(
        "\ufffd" if unicodedata.category(char) in ("Cc", "Cs") else char for char in text
    )
    return cleaned[:MAX_FACT_CHARS]


class FactsReporter:
    """Decides which heartbeat carries facts: the first after start, then each change.

    Facts count as delivered only once a heartbeat carrying them is acknowledged, so a
    heartbeat that fails (network, 5xx) does not lose them: the next one carries them again.
    """

    def __init__(self, source: FactsSource) -> None:
        self._source = source
        self._delivered: NodeFacts | None = None
        self._refused: NodeFacts | None = None

    def pending(self) -> NodeFacts | None:
        """The facts the next heartbeat must carry, or None when the gateway has them (or
        refused exactly these)."""
        facts = self._source()
        if facts == self._delivered or facts == self._refused:
            return None
        return facts

    def delivered(self, facts: NodeFacts) -> None:
        self._delivered = facts

    def refused(self, facts: NodeFacts, reason: str) -> None:
        """The gateway answered ``invalid_argument`` to a heartbeat carrying ``facts``:
        heartbeats go on without them until the facts change."""
        self._refused = facts
        logger.warning(
            "the gateway refused this node's facts (%s); heartbeats go on without them", reason
        )
