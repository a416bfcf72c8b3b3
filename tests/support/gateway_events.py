"""Helpers for the connectivity-event tests: a configuration whose background scans stay
out of the way (tests scan when they choose), and the events as PostgreSQL holds them."""

from __future__ import annotations

import datetime
from typing import Any

import attrs

from fleetwire import messages as m
from gateway.config import Config
from gateway.principals import NodePrincipal
from gateway.services import Services
from tests.support.gateway_services import FakeClock, Node, make_config
from tests.support.postgres import query

# The offline scan and the gauge refresh run when the test calls them (their tasks sleep
# an hour first; the gauge refresher's first round reads an empty fleet).
QUIET = {"offline_scan_interval_seconds": 3600.0, "gauge_refresh_interval_seconds": 3600.0}


def quiet_config(database_url: str, **overrides: Any) -> Config:
    return make_config(database_url, **{**QUIET, **overrides})


def kinds(database_url: str, fleet_node_id: int) -> list[str]:
    """The node's events, oldest first, by kind."""
    rows = query(
        database_url,
        "SELECT kind FROM fleet_node_events WHERE fleet_node_id = %s ORDER BY id",
        (fleet_node_id,),
    )
    return [str(kind) for (kind,) in rows]


def all_events(database_url: str) -> list[tuple[int, str, datetime.datetime]]:
    """Every event as (node, kind, occurred_at), in id order."""
    rows = query(
        database_url, "SELECT fleet_node_id, kind, occurred_at FROM fleet_node_events ORDER BY id"
    )
    return [(int(node), str(kind), at) for node, kind, at in rows]


@attrs.frozen
class Beater:
    """Sends a node's heartbeats through the service at the fake clock's time."""

    services: Services
    clock: FakeClock
    principal: NodePrincipal

    async def beat(
        self, *, stopping: bool = False, facts: m.NodeFacts | None = None
    ) -> m.UploadHeartbeatResponse:
        request = m.UploadHeartbeatRequest(sent_at=self.clock.now, stopping=stopping, facts=facts)
        return await self.services.heartbeats.record(self.principal, request)


async def beater(services: Services, clock: FakeClock, node: Node) -> Beater:
    return Beater(services, clock, await services.auth.resolve_session(node.session_token))


def facts(**overrides: str) -> m.NodeFacts:
    values = {
        "agent_version": "0.9.0",
        "hostname": "edge-1.example",
        "os": "Linux 6.1.0 x86_64",
        "boot_id": "5b3c0c2e-7a4e-4a5e-9a53-0d1f3c2b9e11",
        "python_version": "3.11.7",
    }
    return m.NodeFacts(**{**values, **overrides})
