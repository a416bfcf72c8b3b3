"""Node facts (SPEC 4.11): what they hold, and which heartbeats carry them, on virtual time."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from agent.facts import gather_facts
from agent.statedir import StateStore
from fleetwire import messages as m
from fleetwire.codes import Code
from tests.support.commands import Cli
from tests.support.daemon_runner import HealthSaves, start_daemon
from tests.support.enrolled_node import make_enrolled_state
from tests.support.fake_gateway import FakeGateway, error_response

pytestmark = pytest.mark.trio


class FakeHost:
    """The facts source with a boot id and a host name the test changes."""

    def __init__(self) -> None:
        self.boot_id = "boot-a"
        self.hostname = "node-host"

    def facts(self) -> m.NodeFacts:
        return m.NodeFacts(
            agent_version="1.2.3",
            hostname=self.hostname,
            os="Linux 6.1.0 x86_64",
            boot_id=self.boot_id,
            python_version="3.11.7",
        )


def carried(gateway: FakeGateway) -> list[tuple[float, m.NodeFacts | None]]:
    return [(at, request.facts) for at, request in gateway.heartbeats]


async def run_for(cli: Cli, store: StateStore, host: FakeHost, seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, HealthSaves(store.directory), node_facts=host.facts)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


async def test_facts_go_with_the_first_heartbeat_and_each_change_only(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """The first heartbeat carries the facts, the next ones none; a changed host name goes
    with the next heartbeat, once."""
    make_enrolled_state(store, gateway)
    host = FakeHost()
    original = host.facts()

    async def rename() -> None:
        await trio.sleep_until(200)
        host.hostname = "renamed-host"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(rename)
        await run_for(cli, store, host, 600)
    sent = carried(gateway)
    with_facts = [(at, facts) for at, facts in sent if facts is not None]
    assert with_facts[0] == (0.0, original)
    assert len(with_facts) == 2
    changed_at, changed = with_facts[1]
    assert changed.hostname == "renamed-host"
    assert changed_at == min(at for at, _ in sent if at >= 200)
    assert len(sent) >= 19


async def test_each_start_sends_the_facts_so_a_new_boot_id_reaches_the_gateway(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A daemon restarted after a reboot (a new boot id, faked) sends the new boot id with its
    first heartbeat: what the gateway records as REBOOTED."""
    make_enrolled_state(store, gateway)
    host = FakeHost()
    await run_for(cli, store, host, 100)
    host.boot_id = "boot-b"
    await run_for(cli, store, host, 100)
    boots = [facts.boot_id for _, facts in carried(gateway) if facts is not None]
    assert boots == ["boot-a", "boot-b"]


async def test_facts_of_a_failed_heartbeat_go_with_the_next_one(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """Facts count as delivered only once acknowledged: after a 503, the retry carries them."""
    make_enrolled_state(store, gateway)
    gateway.script("UploadHeartbeat", error_response(Code.UNAVAILABLE, "draining"))
    await run_for(cli, store, FakeHost(), 300)
    sent = carried(gateway)
    assert sent[0][1] is not None and sent[0][1].boot_id == "boot-a"
    assert all(facts is None for _, facts in sent[1:])
    assert gateway.calls_to("UploadHeartbeat")[0].status == 503


async def test_refused_facts_are_dropped_and_the_heartbeats_go_on_without_them(
    cli: Cli,
    gateway: FakeGateway,
    store: StateStore,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """invalid_argument to a heartbeat carrying facts: the same heartbeat goes again at once
    without them, no later one carries them, it counts as no failure, and it is logged once."""
    caplog.set_level(logging.INFO)
    make_enrolled_state(store, gateway)
    gateway.script(
        "UploadHeartbeat",
        error_response(Code.INVALID_ARGUMENT, "facts.hostname: must be printable UTF-8 text"),
    )
    saves = HealthSaves(store.directory)
    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, saves, node_facts=FakeHost().facts)
        await trio.sleep(600)
        nursery.cancel_scope.cancel()
    calls = gateway.calls_to("UploadHeartbeat")
    assert [(c.at, c.status) for c in calls[:2]] == [(0.0, 400), (0.0, 200)]
    assert all(facts is None for _, facts in carried(gateway))
    assert len(carried(gateway)) >= 19
    refusals = [r for r in caplog.records if "refused this node's facts" in r.getMessage()]
    assert len(refusals) == 1
    assert "must be printable UTF-8 text" in refusals[0].getMessage()
    assert all(h.consecutive_failures == 0 for _, h in saves.saved)


async def test_real_facts_reach_the_gateway(
    cli: Cli, gateway: FakeGateway, store: StateStore, autojump_clock: trio.testing.MockClock
) -> None:
    """With the default source the first heartbeat carries this host's facts."""
    make_enrolled_state(store, gateway)
    async with trio.open_nursery() as nursery:
        start_daemon(nursery, cli, HealthSaves(store.directory))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    first = carried(gateway)[0][1]
    assert first == gather_facts()
