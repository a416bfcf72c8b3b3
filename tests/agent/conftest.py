"""Fixtures of the agent tests; the helpers behind them live in :mod:`tests.support`."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.statedir import StateStore
from tests.support.commands import Cli, run_command
from tests.support.fake_gateway import FakeGateway
from tests.support.served_gateway import serve_fake_gateway, serve_tls_fake_gateway


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state")


@pytest.fixture
def cli(gateway: FakeGateway, store: StateStore) -> Cli:
    """Run one ``fleetnode`` command in process against the fake gateway: exit code, stdout,
    and stderr holding prompts and the log lines."""
    return functools.partial(run_command, store, gateway.transport)


@pytest.fixture
def http_gateway() -> Iterator[tuple[FakeGateway, str]]:
    with serve_fake_gateway(None) as served:
        yield served


@pytest.fixture
def https_gateway(tmp_path: Path) -> Iterator[tuple[FakeGateway, str, Path]]:
    """The fake gateway over TLS with a private CA; yields the CA's PEM path too."""
    pem = tmp_path / "ca.pem"
    with serve_tls_fake_gateway(pem) as (fake, url):
        yield fake, url, pem
