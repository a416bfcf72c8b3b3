"""The gateway's dependency floors keep known HTTP parser fixes (issue 10, item 8)."""

from __future__ import annotations

import configparser
import re
from importlib.metadata import version
from pathlib import Path

SETUP_CFG = Path(__file__).resolve().parents[2] / "setup.cfg"
# aiohttp 3.12.14: its pure-Python parser parses chunked trailers (CVE-2025-53643,
# request smuggling); 3.10.11 had fixed newlines in chunk extensions.
AIOHTTP_FLOOR = (3, 12, 14)


def release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_gateway_extra_requires_an_aiohttp_without_the_smuggling_bugs() -> None:
    """The [gateway] extra asks for aiohttp >= 3.12.14, and the installed one is at least that."""
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    requirements = config["options.extras_require"]["gateway"].split()
    (floor,) = [req for req in requirements if req.startswith("aiohttp>=")]
    assert release(floor.removeprefix("aiohttp>=")) >= AIOHTTP_FLOOR
    assert release(version("aiohttp")) >= AIOHTTP_FLOOR
