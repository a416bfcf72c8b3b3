"""Helpers for the service-level gateway tests: a runtime on a test database, an
organization with admin and viewer tokens, and a fully enrolled node."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator
from typing import Any

import attrs
import nacl.signing
import psycopg2

from fleetwire import messages as m
from gateway import runtime as rt
from gateway.config import Config
from gateway.metrics import Metrics, new_metrics
from gateway.principals import AdminPrincipal, Role
from gateway.runtime import Runtime

SIGNING_CONTEXT = b"fleetnode-auth-v1\x00"


class FakeClock:
    """The gateway's clock, moved by the test (no sleeping)."""

    def __init__(self, start: datetime.datetime | None = None) -> None:
        self.now = start or datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def make_config(database_url: str, **overrides: Any) -> Config:
    return Config(database_url=database_url, **overrides)


@attrs.frozen
class Harness:
    runtime: Runtime
    metrics: Metrics


@contextlib.asynccontextmanager
async def open_harness(config: Config, **kwargs: Any) -> AsyncIterator[Harness]:
    metrics = new_metrics()
    async with rt.open_runtime(config, metrics, **kwargs) as runtime:
        yield Harness(runtime, metrics)


@attrs.frozen
class Org:
    org_id: int
    admin: AdminPrincipal
    viewer: AdminPrincipal


async def make_org(runtime: Runtime, database_url: str, name: str = "acme") -> Org:
    org_id = await rt.create_org(database_url, name)
    admin_token = await rt.create_admin_token(database_url, name, Role.ADMIN, "ops")
    viewer_token = await rt.create_admin_token(database_url, name, Role.VIEWER, "dash")
    return Org(
        org_id=org_id,
        admin=await runtime.admin.resolve_token(admin_token),
        viewer=await runtime.admin.resolve_token(viewer_token),
    )


@attrs.frozen
class Node:
    fleet_node_id: int
    key: nacl.signing.SigningKey
    api_key: str
    session_token: str

    @property
    def pubkey(self) -> bytes:
        return bytes(self.key.verify_key)


def sign(key: nacl.signing.SigningKey, challenge: bytes) -> bytes:
    return key.sign(SIGNING_CONTEXT + challenge).signature


async def new_code(runtime: Runtime, org: Org, ttl_seconds: int | None = None) -> str:
    reply = await runtime.admin.create_code(
        org.admin, m.CreateEnrollmentCodeRequest(ttl_seconds=ttl_seconds)
    )
    return reply.code


async def register(
    runtime: Runtime, code: str, name: str, key: nacl.signing.SigningKey
) -> m.RegisterResponse:
    return await runtime.enrollment.register(
        m.RegisterRequest(enrollment_token=code, name=name, identity_pubkey=bytes(key.verify_key))
    )


async def handshake(runtime: Runtime, api_key: str, key: nacl.signing.SigningKey) -> str:
    begun = await runtime.auth.begin(
        m.BeginAuthHandshakeRequest(api_key=api_key, identity_pubkey=bytes(key.verify_key))
    )
    done = await runtime.auth.complete(
        m.CompleteAuthHandshakeRequest(
            challenge=begun.challenge, signature=sign(key, begun.challenge)
        )
    )
    return done.session_token


async def enroll(runtime: Runtime, org: Org, name: str) -> Node:
    """Code, Register, Confirm and a handshake: a node holding a live session."""
    key = nacl.signing.SigningKey.generate()
    registered = await register(runtime, await new_code(runtime, org), name, key)
    confirmed = await runtime.admin.confirm(
        org.admin, m.ConfirmFleetNodeRequest(fleet_node_id=registered.fleet_node_id)
    )
    token = await handshake(runtime, confirmed.api_key, key)
    return Node(int(registered.fleet_node_id), key, confirmed.api_key, token)


def heartbeat_request(sent_at: datetime.datetime | None = None) -> m.UploadHeartbeatRequest:
    return m.UploadHeartbeatRequest(sent_at=sent_at or datetime.datetime.now(datetime.UTC))


def query(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read (or poke) the test database directly, outside the gateway."""
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


COUNT_UPDATES_TRIGGER = """
CREATE TABLE last_seen_updates (fleet_node_id bigint NOT NULL);
CREATE FUNCTION count_last_seen_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO last_seen_updates VALUES (NEW.id);
    RETURN NEW;
END $$;
CREATE TRIGGER count_last_seen_update AFTER UPDATE OF last_seen_at ON fleet_nodes
    FOR EACH ROW EXECUTE FUNCTION count_last_seen_update();
"""


def install_update_counter(database_url: str) -> None:
    """A test-only trigger: every UPDATE of a node's last_seen_at leaves one row."""
    query(database_url, COUNT_UPDATES_TRIGGER)


def last_seen_updates(database_url: str, fleet_node_id: int) -> int:
    rows = query(
        database_url,
        "SELECT count(*) FROM last_seen_updates WHERE fleet_node_id = %s",
        (fleet_node_id,),
    )
    return int(rows[0][0])
