"""Where the node's facts come from (SPEC 4.11): this host, made acceptable to the wire."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import unicodedata

from agent.facts import gather_facts, printable, read_boot_id
from fleetwire import messages as m


def test_gathered_facts_describe_this_host_and_python() -> None:
    """The real source: the package version, the host name, "Linux <release> <machine>",
    the injected boot id and the Python version."""
    facts = gather_facts(boot_id=lambda: "the-boot")
    assert facts.agent_version == importlib.metadata.version("fleetnode")
    assert facts.hostname == socket.gethostname()
    uname = platform.uname()
    assert facts.os == f"{uname.system} {uname.release} {uname.machine}"
    assert facts.boot_id == "the-boot"
    assert facts.python_version == platform.python_version()


def test_boot_id_is_linux_s_or_empty() -> None:
    """The boot id is /proc's (a UUID on Linux), or empty where there is none."""
    boot_id = read_boot_id()
    assert boot_id == "" or len(boot_id) == 36


def test_unprintable_or_long_values_are_made_acceptable_to_the_wire() -> None:
    """Control characters and undecodable bytes become U+FFFD and values are cut to 255
    characters, so the node's own facts always pass the wire's validation."""
    cleaned = printable("host\x00name\udcff" + "x" * 300)
    assert len(cleaned) == 255
    assert cleaned.startswith("host\ufffdname\ufffdx")
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in cleaned)
    m.NodeFacts(hostname=cleaned)  # passes the validators
