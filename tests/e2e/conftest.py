"""Fixtures of the e2e tests: sync on purpose (plain subprocesses, no event loop).

``harness`` owns every process a test starts and, at teardown, stops them all and
fails the test if any secret it handled shows up in any log those processes wrote.
``fleet`` is a bootstrapped gateway on a fresh database with an operator for it, for
tests that kill or reconfigure their gateway. ``shared_fleet`` is the same, shared by
every test that leaves its gateway alone (a gateway costs seconds to bootstrap); each
test then works inside ``harness.scope()``, which stops what the test started and
checks the logs. Tests on a shared gateway use node names of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from gateway.dev.pgcluster import Cluster
from tests.e2e.actors import Gateway, Operator, bootstrap
from tests.e2e.harness import Harness
from tests.support.postgres import drop_database, new_database

HERE = Path(__file__).resolve().parent
DEMO_FIRST = "test_demo_runs_its_postgresql_and_three_fleetnode_daemons"
DEMO_LAST = "test_demo_exits_0_with_three_online_nodes_and_leaves_nothing_behind"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let the demo's 15 s run in the background of the other e2e tests: its first test
    (the demo is up) goes before them, its last test (the demo ended well) after them."""
    e2e = [i for i, item in enumerate(items) if item.path.parent == HERE]
    if not e2e:
        return
    block = items[e2e[0] : e2e[-1] + 1]
    first = [item for item in block if item.name == DEMO_FIRST]
    last = [item for item in block if item.name == DEMO_LAST]
    rest = [item for item in block if item.name not in (DEMO_FIRST, DEMO_LAST)]
    items[e2e[0] : e2e[-1] + 1] = [*first, *rest, *last]


@attrs.frozen
class Fleet:
    harness: Harness
    database_url: str
    gateway: Gateway
    operator: Operator
    admin_token: str


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    with harness.scope():
        yield harness


@pytest.fixture(scope="module")
def module_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("e2e-module"))
    with harness.scope():
        yield harness


@pytest.fixture(scope="session")
def session_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("e2e-session"))
    with harness.scope():
        yield harness


def _database(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh database with the schema, dropped at the end."""
    name, url = new_database(pg_cluster)
    yield url
    drop_database(pg_cluster, name)


@pytest.fixture(scope="module")
def module_database_url(pg_cluster: Cluster) -> Iterator[str]:
    yield from _database(pg_cluster)


@pytest.fixture(scope="session")
def session_database_url(pg_cluster: Cluster) -> Iterator[str]:
    yield from _database(pg_cluster)


def open_fleet(harness: Harness, database_url: str) -> Fleet:
    """One gateway (port 0) on ``database_url``, bootstrapped through its own CLI."""
    gateway = Gateway(harness, database_url, "gateway")
    token = bootstrap(harness, database_url, gateway)
    return Fleet(harness, database_url, gateway, Operator(harness, gateway.url, token), token)


@pytest.fixture
def fleet(harness: Harness, database_url: str) -> Fleet:
    return open_fleet(harness, database_url)


@pytest.fixture(scope="session")
def session_fleet(session_harness: Harness, session_database_url: str) -> Fleet:
    return open_fleet(session_harness, session_database_url)


@pytest.fixture
def shared_fleet(session_fleet: Fleet) -> Iterator[Fleet]:
    """The shared fleet; what the test starts is stopped after it, and logs are checked."""
    with session_fleet.harness.scope():
        yield session_fleet
