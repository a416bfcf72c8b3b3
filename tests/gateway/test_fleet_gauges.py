"""fleet_nodes{org,connectivity} (SPEC 2.3): refreshed from one query that uses its index at
100,000 nodes, every organization with all four connectivities, cleared when refreshes keep
failing; the background-task failure series exist from the start."""

from __future__ import annotations

from typing import Any

import nacl.signing
import psycopg2
import pytest

from fleetwire import messages as m
from gateway.errors import Unavailable
from gateway.fleet_gauges import MAX_FAILED_REFRESHES, FleetGauges
from gateway.metrics import new_metrics
from gateway.offline_scan import scan_once
from gateway.store import oneshot
from gateway.store.liveness import COUNT_BY_ORG
from gateway.store.records import Liveness, LivenessCount
from tests.support.gateway_events import beater, quiet_config
from tests.support.gateway_services import (
    FakeClock,
    enroll,
    make_org,
    new_code,
    open_harness,
    open_test_store,
    register,
)

TASKS = {"last_seen_writer", "listener", "sweeper", "offline_scan", "fleet_gauges"}


def samples(metrics: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name
    }


def gauge(metrics: Any) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["org"], dict(labels)["connectivity"]): value
        for labels, value in samples(metrics, "fleet_nodes").items()
    }


@pytest.mark.asyncio
async def test_gauge_counts_each_org_by_connectivity(database_url: str) -> None:
    """Confirmed nodes per organization and recorded connectivity, zeros written, an
    organization without nodes included; nodes awaiting confirmation and revoked ones
    count nowhere."""
    clock = FakeClock()
    async with (
        open_harness(quiet_config(database_url), clock=clock) as h,
        open_test_store(database_url) as store,
    ):
        acme = await make_org(h.services, database_url, "acme")
        await oneshot.ensure_org(database_url, "empty")
        nodes = [await enroll(h.services, acme, f"edge-{i}") for i in range(5)]
        await register(
            h.services,
            await new_code(h.services, acme),
            "waiting",
            nacl.signing.SigningKey.generate(),
        )
        for node in nodes[:3]:
            await (await beater(h.services, clock, node)).beat()
        clock.advance(151)
        await (await beater(h.services, clock, nodes[1])).beat(stopping=True)
        await (await beater(h.services, clock, nodes[2])).beat()
        await scan_once(store.liveness, clock, 150.0)
        await h.services.admin.revoke(
            acme.admin, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(nodes[4].fleet_node_id))
        )
        metrics = new_metrics()
        await FleetGauges(store.liveness, metrics.fleet_nodes).refresh()
    assert gauge(metrics) == {
        ("acme", "online"): 1, ("acme", "offline"): 1, ("acme", "never_seen"): 1,
        ("acme", "stopped"): 1,
        ("empty", "online"): 0, ("empty", "offline"): 0, ("empty", "never_seen"): 0,
        ("empty", "stopped"): 0,
    }  # fmt: skip


class FlakyStore:
    def __init__(self) -> None:
        self.down = False

    async def count_by_org(self) -> list[LivenessCount]:
        if self.down:
            raise Unavailable("database unavailable")
        return [LivenessCount("acme", Liveness.ONLINE, 7)]


@pytest.mark.asyncio
async def test_gauge_is_cleared_after_failed_refreshes_and_comes_back() -> None:
    """While the database is down the last counts stay for a few refreshes, then the series
    go away (stale counts would look healthy); the next good refresh restores them."""
    metrics = new_metrics()
    store = FlakyStore()
    gauges = FleetGauges(store, metrics.fleet_nodes)  # type: ignore[arg-type]
    await gauges.refresh()
    assert gauge(metrics)[("acme", "online")] == 7
    store.down = True
    for _ in range(MAX_FAILED_REFRESHES - 1):
        await gauges.refresh()
        assert gauge(metrics)[("acme", "online")] == 7
    await gauges.refresh()
    assert gauge(metrics) == {}
    store.down = False
    await gauges.refresh()
    assert gauge(metrics)[("acme", "offline")] == 0 and gauge(metrics)[("acme", "online")] == 7


@pytest.mark.asyncio
async def test_task_failure_series_exist_at_zero_from_the_start(database_url: str) -> None:
    """Every background task's fleet_gateway_background_task_failures_total is exported at 0
    as soon as the gateway runs (alert rules on increase() need the series)."""
    async with open_harness(quiet_config(database_url)) as h:
        failures = samples(h.metrics, "fleet_gateway_background_task_failures_total")
    tasks = {dict(labels)["task"]: value for labels, value in failures.items()}
    assert set(tasks) >= TASKS | {"event_retention"}
    assert set(tasks.values()) == {0.0}


def test_the_gauge_query_uses_its_index_at_100k_nodes(database_url: str) -> None:
    """At 100,000 nodes (some revoked, some awaiting confirmation, two organizations) the
    gauge's one query reads the partial index alone, not the table."""
    conn = psycopg2.connect(database_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("INSERT INTO organizations (name) VALUES ('acme'), ('globex')")
            cur.execute(
                """
                INSERT INTO fleet_nodes (org_id, name, identity_pubkey, identity_fingerprint,
                                         status, created_at, last_seen_at, liveness, deleted_at)
                SELECT (SELECT id FROM organizations
                        WHERE name = CASE WHEN i % 10 = 0 THEN 'globex' ELSE 'acme' END),
                       'n-' || i, sha256(i::text::bytea), 'f',
                       CASE WHEN i % 50 = 0 THEN 'REVOKED'
                            WHEN i % 97 = 0 THEN 'AWAITING_CONFIRMATION' ELSE 'CONFIRMED' END,
                       now(), now(),
                       CASE WHEN i % 10 = 1 THEN 'OFFLINE' WHEN i % 33 = 0 THEN 'STOPPED'
                            ELSE 'ONLINE' END,
                       CASE WHEN i % 50 = 0 THEN now() END
                FROM generate_series(1, 100000) AS i
                """
            )
            # The test cluster commits asynchronously: VACUUM marks pages all-visible only
            # once the inserting commit is flushed, which CHECKPOINT does.
            cur.execute("CHECKPOINT")
            cur.execute("VACUUM ANALYZE fleet_nodes")
            cur.execute("EXPLAIN " + COUNT_BY_ORG)
            plan = "\n".join(line for (line,) in cur.fetchall())
    finally:
        conn.close()
    assert "Index Only Scan using fleet_nodes_confirmed_liveness" in plan, plan
    assert "Seq Scan on fleet_nodes" not in plan, plan
