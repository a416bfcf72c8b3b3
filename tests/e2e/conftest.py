"""Fixtures of the e2e tests: sync on purpose (plain subprocesses, no event loop).

``harness`` owns every process a test starts and, at teardown, stops them all and
fails the test if any secret it handled shows up in any log those processes wrote.
``fleet`` is a bootstrapped gateway on a fresh database with an operator for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.e2e.actors import Gateway, Operator, bootstrap
from tests.e2e.harness import Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.stop_all()
    leaked = harness.leaked_secrets()
    assert not leaked, "secrets in logs:\n" + "\n".join(leaked)


@attrs.frozen
class Fleet:
    harness: Harness
    database_url: str
    gateway: Gateway
    operator: Operator
    admin_token: str


@pytest.fixture
def fleet(harness: Harness, database_url: str) -> Fleet:
    """One gateway (port 0) on a fresh database, bootstrapped through its own CLI."""
    gateway = Gateway(harness, database_url, "gateway")
    token = bootstrap(harness, database_url, gateway)
    return Fleet(harness, database_url, gateway, Operator(harness, gateway.url, token), token)
