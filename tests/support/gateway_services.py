"""Helpers for the service-level gateway tests: a services on a test database, an
organization with admin and viewer tokens, and a fully enrolled node."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import attrs
import nacl.signing

from fleetwire import messages as m
from fleetwire.identity import auth_message
from fleetwire.procedures import Procedure
from gateway.commands import create_admin_token
from gateway.config import Config
from gateway.errors import Unauthenticated
from gateway.metrics import Metrics, new_metrics
from gateway.principals import AdminPrincipal, Role
from gateway.rpcs import rpc_table
from gateway.services import Services, open_services
from gateway.store import oneshot
from gateway.store.store import Store, open_store
from tests.support.postgres import query


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
    services: Services
    metrics: Metrics


@contextlib.asynccontextmanager
async def open_harness(config: Config, **kwargs: Any) -> AsyncIterator[Harness]:
    metrics = new_metrics()
    async with open_services(config, metrics, **kwargs) as services:
        yield Harness(services, metrics)


@contextlib.asynccontextmanager
async def open_test_store(database_url: str) -> AsyncIterator[Store]:
    """The gateway's store on its own small pool, for tests that call it directly."""
    async with open_store(
        database_url, pool_size=2, timeout_seconds=5.0, on_pool_change=lambda _in_use: None
    ) as store:
        yield store


@attrs.frozen
class Org:
    org_id: int
    admin: AdminPrincipal
    viewer: AdminPrincipal


async def make_org(services: Services, database_url: str, name: str = "acme") -> Org:
    org_id = await oneshot.ensure_org(database_url, name)
    admin_token = await create_admin_token(database_url, name, Role.ADMIN, "ops")
    viewer_token = await create_admin_token(database_url, name, Role.VIEWER, "dash")
    return Org(
        org_id=org_id,
        admin=await services.auth.resolve_admin_token(admin_token),
        viewer=await services.auth.resolve_admin_token(viewer_token),
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


Resp = TypeVar("Resp")


async def call_as(
    services: Services, principal: AdminPrincipal, procedure: Procedure[Any, Resp], request: object
) -> Resp:
    """An operator call as the adapter makes it: the role the RPC table declares is checked
    before the service runs."""
    rpc = next(rpc for rpc in rpc_table(services) if rpc.procedure.path == procedure.path)
    rpc.authorize(principal)
    assert rpc.invoke is not None
    result: Resp = await rpc.invoke(principal, request)
    return result


def sign(key: nacl.signing.SigningKey, challenge: bytes) -> bytes:
    return key.sign(auth_message(challenge)).signature


async def new_code(services: Services, org: Org, ttl_seconds: int | None = None) -> str:
    reply = await services.codes.create_code(
        org.admin, m.CreateEnrollmentCodeRequest(ttl_seconds=ttl_seconds)
    )
    return reply.code


async def register(
    services: Services, code: str, name: str, key: nacl.signing.SigningKey
) -> m.RegisterResponse:
    return await services.enrollment.register(
        m.RegisterRequest(enrollment_token=code, name=name, identity_pubkey=bytes(key.verify_key))
    )


async def handshake(services: Services, api_key: str, key: nacl.signing.SigningKey) -> str:
    begun = await services.auth.begin(
        m.BeginAuthHandshakeRequest(api_key=api_key, identity_pubkey=bytes(key.verify_key))
    )
    done = await services.auth.complete(
        m.CompleteAuthHandshakeRequest(
            challenge=begun.challenge, signature=sign(key, begun.challenge)
        )
    )
    return done.session_token


async def enroll(services: Services, org: Org, name: str) -> Node:
    """Code, Register, Confirm and a handshake: a node holding a live session."""
    key = nacl.signing.SigningKey.generate()
    registered = await register(services, await new_code(services, org), name, key)
    confirmed = await services.admin.confirm(
        org.admin, m.ConfirmFleetNodeRequest(fleet_node_id=registered.fleet_node_id)
    )
    token = await handshake(services, confirmed.api_key, key)
    return Node(int(registered.fleet_node_id), key, confirmed.api_key, token)


def heartbeat_request(sent_at: datetime.datetime | None = None) -> m.UploadHeartbeatRequest:
    return m.UploadHeartbeatRequest(sent_at=sent_at or datetime.datetime.now(datetime.UTC))


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


async def wait_rejected(services: Services, token: str, within_seconds: float = 1.0) -> None:
    """Return once ``services`` refuse the session token, trying again after each
    notification its listener applies; fail if that takes longer than ``within_seconds``
    (SPEC 3.4, 3.5: every replica within 1 s)."""
    applied = services.listener.invalidations
    async with asyncio.timeout(within_seconds):
        seen = applied.value
        while True:
            try:
                await services.auth.resolve_session(token)
            except Unauthenticated:
                return
            seen += 1
            await applied.wait_for(seen)
