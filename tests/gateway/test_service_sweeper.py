"""The sweeper removes what expired and nothing else (SPEC 3.7)."""

from __future__ import annotations

import nacl.signing
import pytest

from fleetwire import messages as m
from gateway.sweeper import sweep_once
from tests.support.gateway_services import (
    FakeClock,
    enroll,
    make_config,
    make_org,
    new_code,
    open_harness,
    open_test_store,
    register,
)
from tests.support.postgres import query

pytestmark = pytest.mark.asyncio


async def test_sweep_removes_expired_rows_only(database_url: str) -> None:
    """Expired challenges, sessions and enrollments go (unconfirmed nodes soft-deleted);
    live ones and confirmed nodes stay."""
    clock = FakeClock()
    config = make_config(database_url, session_ttl_seconds=3600.0)
    async with open_harness(config, clock=clock) as h, open_test_store(database_url) as store:
        org = await make_org(h.services, database_url)
        confirmed = await enroll(h.services, org, "confirmed")
        await h.services.auth.begin(
            m.BeginAuthHandshakeRequest(api_key=confirmed.api_key, identity_pubkey=confirmed.pubkey)
        )
        await new_code(h.services, org, ttl_seconds=60)  # never used
        waiting_key = nacl.signing.SigningKey.generate()
        await register(
            h.services, await new_code(h.services, org, ttl_seconds=60), "w", waiting_key
        )

        clock.advance(120)  # codes and the challenge expired; the session has not
        await sweep_once(store.housekeeping, clock)
        assert query(database_url, "SELECT count(*) FROM auth_challenges") == [(0,)]
        assert query(database_url, "SELECT count(*) FROM sessions") == [(1,)]
        assert query(
            database_url, "SELECT status, count(*) FROM pending_enrollments GROUP BY 1 ORDER BY 1"
        ) == [("CONFIRMED", 1), ("EXPIRED", 2)]
        listed = await h.services.admin.list_nodes(org.admin, m.ListFleetNodesRequest())
        assert [n.name for n in listed.fleet_nodes] == ["confirmed"]
        # The expired node's key and name are free again.
        again = await register(h.services, await new_code(h.services, org), "w", waiting_key)
        assert again.fleet_node_id > 0

        clock.advance(3600)
        await sweep_once(store.housekeeping, clock)
        assert query(database_url, "SELECT count(*) FROM sessions") == [(0,)]
        assert query(database_url, "SELECT status FROM fleet_nodes WHERE name = 'confirmed'") == [
            ("CONFIRMED",)
        ]
