"""Migration 2 (pre-approved, multi-use, revocable codes) upgrades a first-release database
in place: its codes keep working as they did, and bound ones count their use (SPEC 8)."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterator

import nacl.signing
import pytest

from fleetwire import messages as m
from fleetwire.identity import fingerprint
from gateway import secrets
from gateway.dev.pgcluster import Cluster
from gateway.errors import Unauthenticated
from gateway.store import schema
from tests.support.gateway_codes import register_signed
from tests.support.gateway_services import make_config, open_harness
from tests.support.postgres import admin_sql, drop_database, query

pytestmark = pytest.mark.asyncio

FIRST_RELEASE = schema.known_migrations()[0]


@pytest.fixture
def first_release_database(pg_cluster: Cluster) -> Iterator[str]:
    """A database as the first release's init-db left it, dropped after the test."""
    name = "migration_codes_first_release"
    admin_sql(pg_cluster, f"CREATE DATABASE {name}")
    url = pg_cluster.url(name)
    query(url, FIRST_RELEASE.sql)
    yield url
    drop_database(pg_cluster, name)


async def test_first_release_codes_survive_and_count_their_use(
    first_release_database: str,
) -> None:
    """After init-db, a code bound by the first release is USED_UP with one use and a
    signed retry answers its node; an open one still registers a node."""
    url = first_release_database
    now = datetime.datetime.now(datetime.UTC)
    key = nacl.signing.SigningKey.generate()
    pubkey = bytes(key.verify_key)
    bound, still_open = secrets.new_enrollment_code(), secrets.new_enrollment_code()
    query(url, "INSERT INTO organizations (name) VALUES ('acme')")
    query(
        url,
        "INSERT INTO fleet_nodes (org_id, name, identity_pubkey, identity_fingerprint, status,"
        " created_at) SELECT id, 'edge-1', %s, %s, 'AWAITING_CONFIRMATION', %s"
        " FROM organizations",
        (pubkey, fingerprint(pubkey), now),
    )
    for code, node in ((bound, "(SELECT id FROM fleet_nodes)"), (still_open, "NULL")):
        query(
            url,
            "INSERT INTO pending_enrollments (org_id, code_hash, status, created_at, expires_at,"
            f" fleet_node_id) SELECT id, %s, %s, %s, %s, {node} FROM organizations",
            (
                hashlib.sha256(code.encode()).digest(),
                "OPEN" if node == "NULL" else "BOUND",
                now,
                now + datetime.timedelta(hours=1),
            ),
        )

    await schema.migrate(url)

    rows = query(url, "SELECT status, uses, max_uses, pre_approved FROM pending_enrollments")
    assert sorted(rows) == [("BOUND", 1, 1, False), ("OPEN", 0, 1, False)]
    async with open_harness(make_config(url)) as h:
        again = await register_signed(h.services, bound, "edge-1", key)
        node_id = query(url, "SELECT id FROM fleet_nodes")[0][0]
        assert again.fleet_node_id == m.Int64(node_id)
        with pytest.raises(Unauthenticated, match="^invalid enrollment code$"):
            await register_signed(h.services, bound, "edge-2", nacl.signing.SigningKey.generate())
        fresh = await register_signed(
            h.services, still_open, "edge-2", nacl.signing.SigningKey.generate()
        )
        assert fresh.enrollment_status is m.EnrollmentStatus.ENROLLMENT_STATUS_PENDING
