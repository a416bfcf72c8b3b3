"""The last_seen write path, counted in PostgreSQL itself (a test-only trigger)."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from fleetwire import messages as m
from gateway.errors import NotFound, Unavailable
from gateway.principals import NodePrincipal
from tests.support.gateway_services import (
    FakeClock,
    Harness,
    Node,
    enroll,
    heartbeat_request,
    install_update_counter,
    last_seen_updates,
    make_config,
    make_org,
    open_harness,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio


def value(counter: object) -> float:
    return float(counter._value.get())  # type: ignore[attr-defined]


async def enroll_many(h: Harness, database_url: str, count: int) -> list[Node]:
    org = await make_org(h.services, database_url)
    return [await enroll(h.services, org, f"edge-{i}") for i in range(count)]


async def test_heartbeats_inside_the_window_write_once(database_url: str) -> None:
    """Twenty heartbeats within the debounce window update the row exactly once."""
    install_update_counter(database_url)
    async with open_harness(make_config(database_url)) as h:
        (node,) = await enroll_many(h, database_url, 1)
        principal = await h.services.auth.resolve_session(node.session_token)
        replies = [
            await h.services.heartbeats.record(principal, heartbeat_request()) for _ in range(20)
        ]
    assert last_seen_updates(database_url, node.fleet_node_id) == 1
    assert value(h.metrics.heartbeats_received) == 20
    assert value(h.metrics.heartbeats_debounced) == 19
    assert value(h.metrics.last_seen_statements) == 1
    assert value(h.metrics.last_seen_rows_written) == 1
    ((stored,),) = query(
        database_url, "SELECT last_seen_at FROM fleet_nodes WHERE id = %s", (node.fleet_node_id,)
    )
    assert stored == replies[0].received_at


async def test_next_window_writes_again(database_url: str) -> None:
    """Once the debounce window has passed on the gateway clock, the next heartbeat
    advances last_seen_at again."""
    install_update_counter(database_url)
    clock = FakeClock()
    async with open_harness(make_config(database_url), clock=clock) as h:
        (node,) = await enroll_many(h, database_url, 1)
        principal = await h.services.auth.resolve_session(node.session_token)
        await h.services.heartbeats.record(principal, heartbeat_request(clock.now))
        clock.advance(60)  # exactly the window: still absorbed
        await h.services.heartbeats.record(principal, heartbeat_request(clock.now))
        clock.advance(0.001)
        last = await h.services.heartbeats.record(principal, heartbeat_request(clock.now))
    assert last_seen_updates(database_url, node.fleet_node_id) == 2
    ((stored,),) = query(
        database_url, "SELECT last_seen_at FROM fleet_nodes WHERE id = %s", (node.fleet_node_id,)
    )
    assert stored == last.received_at == clock.now


async def test_two_replicas_on_one_database_write_once(database_url: str) -> None:
    """Two gateways sharing a database still write a node's last_seen_at once per window."""
    install_update_counter(database_url)
    config = make_config(database_url)
    async with open_harness(config) as a, open_harness(config) as b:
        (node,) = await enroll_many(a, database_url, 1)
        on_a = await a.services.auth.resolve_session(node.session_token)
        on_b = await b.services.auth.resolve_session(node.session_token)
        for _ in range(3):
            await a.services.heartbeats.record(on_a, heartbeat_request())
            await b.services.heartbeats.record(on_b, heartbeat_request())
    assert last_seen_updates(database_url, node.fleet_node_id) == 1
    # b went to the database once, found the row fresh, and then trusted its memory.
    assert value(b.metrics.last_seen_statements) == 1
    assert value(b.metrics.last_seen_rows_written) == 0
    assert value(b.metrics.heartbeats_debounced) == 3


async def test_debounce_zero_writes_every_heartbeat(database_url: str) -> None:
    """With the debounce disabled every heartbeat updates the row."""
    install_update_counter(database_url)
    async with open_harness(make_config(database_url, last_seen_debounce_seconds=0.0)) as h:
        (node,) = await enroll_many(h, database_url, 1)
        principal = await h.services.auth.resolve_session(node.session_token)
        for _ in range(5):
            await h.services.heartbeats.record(principal, heartbeat_request())
    assert last_seen_updates(database_url, node.fleet_node_id) == 5
    assert value(h.metrics.heartbeats_debounced) == 0


async def test_debounce_zero_answers_a_lone_write_without_waiting_for_the_window(
    database_url: str,
) -> None:
    """With the debounce off a lone heartbeat is written at once, not after the flush
    interval (which is only an upper bound)."""
    config = make_config(database_url, last_seen_debounce_seconds=0.0, flush_interval_seconds=60)
    async with open_harness(config) as h:
        (node,) = await enroll_many(h, database_url, 1)
        principal = await h.services.auth.resolve_session(node.session_token)
        async with asyncio.timeout(10):  # far less than the 60 s window
            await h.services.heartbeats.record(principal, heartbeat_request())
            await h.services.heartbeats.record(principal, heartbeat_request())
    assert value(h.metrics.last_seen_statements) == 2


async def test_debounce_zero_still_commits_concurrent_writes_together(database_url: str) -> None:
    """With the debounce off, heartbeats that arrive together still share one UPDATE."""
    config = make_config(database_url, last_seen_debounce_seconds=0.0, flush_interval_seconds=60)
    async with open_harness(config) as h:
        nodes = await enroll_many(h, database_url, 25)
        principals = [await h.services.auth.resolve_session(n.session_token) for n in nodes]
        async with asyncio.timeout(10):
            await asyncio.gather(
                *(h.services.heartbeats.record(p, heartbeat_request()) for p in principals)
            )
    assert value(h.metrics.last_seen_statements) == 1
    assert value(h.metrics.last_seen_rows_written) == 25


async def test_concurrent_heartbeats_share_one_statement(database_url: str) -> None:
    """Concurrent heartbeats that need a write are committed by one UPDATE, and each is
    answered only once its row is durable."""
    install_update_counter(database_url)
    async with open_harness(make_config(database_url, flush_interval_seconds=0.5)) as h:
        nodes = await enroll_many(h, database_url, 25)
        principals = [await h.services.auth.resolve_session(n.session_token) for n in nodes]

        async def beat(principal: NodePrincipal) -> None:
            reply = await h.services.heartbeats.record(principal, heartbeat_request())
            stored = await asyncio.to_thread(
                query,
                database_url,
                "SELECT last_seen_at FROM fleet_nodes WHERE id = %s",
                (principal.fleet_node_id,),
            )
            assert stored == [(reply.received_at,)]

        await asyncio.gather(*(beat(p) for p in principals))
    assert value(h.metrics.last_seen_statements) == 1
    assert value(h.metrics.last_seen_rows_written) == 25
    assert all(last_seen_updates(database_url, n.fleet_node_id) == 1 for n in nodes)


async def test_a_flush_holds_at_most_flush_max_rows(database_url: str) -> None:
    """A flush larger than flush_max_rows is split into statements of at most that size."""
    config = make_config(database_url, flush_interval_seconds=0.2, flush_max_rows=10)
    async with open_harness(config) as h:
        nodes = await enroll_many(h, database_url, 25)
        principals = [await h.services.auth.resolve_session(n.session_token) for n in nodes]
        await asyncio.gather(
            *(h.services.heartbeats.record(p, heartbeat_request()) for p in principals)
        )
    assert value(h.metrics.last_seen_statements) == 3
    assert value(h.metrics.last_seen_rows_written) == 25


async def test_skew_is_stored_only_with_the_debounced_write(database_url: str) -> None:
    """Clock skew is measured at the write; heartbeats absorbed by the debounce leave it."""
    async with open_harness(make_config(database_url)) as h:
        (node,) = await enroll_many(h, database_url, 1)
        principal = await h.services.auth.resolve_session(node.session_token)
        now = datetime.datetime.now(datetime.UTC)
        await h.services.heartbeats.record(
            principal, heartbeat_request(now - datetime.timedelta(seconds=90))
        )
        await h.services.heartbeats.record(
            principal, heartbeat_request(now + datetime.timedelta(seconds=90))
        )
    ((skew,),) = query(
        database_url, "SELECT clock_skew_ms FROM fleet_nodes WHERE id = %s", (node.fleet_node_id,)
    )
    assert -91_000 < skew < -89_000  # the node is behind: negative


async def test_revoked_node_heartbeat_is_not_found(database_url: str) -> None:
    """A node revoked between authentication and the write gets not_found."""
    async with open_harness(make_config(database_url)) as h:
        org = await make_org(h.services, database_url)
        node = await enroll(h.services, org, "edge-1")
        principal = await h.services.auth.resolve_session(node.session_token)
        await h.services.heartbeats.record(principal, heartbeat_request())  # now remembered
        await h.services.admin.revoke(
            org.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(node.fleet_node_id))
        )
        with pytest.raises(NotFound, match="^fleet node not found$"):
            await h.services.heartbeats.record(principal, heartbeat_request())


async def test_pending_heartbeats_are_flushed_at_shutdown(database_url: str) -> None:
    """Closing the services commits queued heartbeats and answers their callers."""
    install_update_counter(database_url)
    async with open_harness(make_config(database_url, flush_interval_seconds=60.0)) as h:
        nodes = await enroll_many(h, database_url, 3)
        principals = [await h.services.auth.resolve_session(n.session_token) for n in nodes]
        beats = [
            asyncio.create_task(h.services.heartbeats.record(p, heartbeat_request()))
            for p in principals
        ]
        await asyncio.sleep(0)  # one loop turn: each task runs up to its queued write
        assert h.services.writer.queued() == 3
    replies = await asyncio.gather(*beats)
    assert all(r.received_at is not None for r in replies)
    assert all(last_seen_updates(database_url, n.fleet_node_id) == 1 for n in nodes)


async def test_database_down_answers_unavailable(database_url: str) -> None:
    """A heartbeat whose write cannot reach the database gets unavailable, not success."""
    unreachable = "postgresql:///nowhere?host=/nonexistent-socket-dir&user=postgres"
    async with open_harness(make_config(unreachable, db_timeout_seconds=1.0)) as h:
        principal = NodePrincipal(
            fleet_node_id=1,
            org_id=1,
            session_id=1,
            session_expires_at=datetime.datetime.now(datetime.UTC),
        )
        with pytest.raises(Unavailable) as caught:
            await h.services.heartbeats.record(principal, heartbeat_request())
    assert caught.value.retry_after_seconds is not None
    assert value(h.metrics.last_seen_statements) == 0
