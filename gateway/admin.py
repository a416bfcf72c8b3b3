"""The operator-facing services (SPEC 2.2, 3.3, 3.5): listing, confirm and revoke (codes:
``gateway.codes``).
Everything is scoped to the token's organization: another organization's node id
behaves exactly like one that does not exist. The role a call needs (a viewer may only
list) is declared in ``gateway.rpcs`` and checked before these services run.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from fleetwire import messages as m
from gateway import secrets as s
from gateway.clock import Clock
from gateway.config import Config
from gateway.errors import FailedPrecondition, NotFound
from gateway.paging import decode_page_token, encode_page_token
from gateway.principals import AdminPrincipal
from gateway.store.enrollment import EnrollmentStore
from gateway.store.nodes import NodeStore
from gateway.store.records import (
    ConfirmOutcome,
    ConnectivityFilter,
    Liveness,
    NodeFactsRecord,
    NodeRecord,
    NodeStatus,
)

logger = logging.getLogger(__name__)

NODE_NOT_FOUND = "fleet node not found"
CONFIRM_REFUSED = {
    ConfirmOutcome.REVOKED: "fleet node is revoked",
    ConfirmOutcome.NOT_AWAITING: "fleet node is not awaiting confirmation",
    ConfirmOutcome.CODE_EXPIRED: "the fleet node's enrollment code expired before confirmation",
}
_STATUS = {
    NodeStatus.AWAITING_CONFIRMATION: (
        m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_AWAITING_CONFIRMATION
    ),
    NodeStatus.CONFIRMED: m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_CONFIRMED,
    NodeStatus.REVOKED: m.FleetNodeEnrollmentStatus.FLEET_NODE_ENROLLMENT_STATUS_REVOKED,
}
_FILTER = {
    m.Connectivity.CONNECTIVITY_UNSPECIFIED: ConnectivityFilter.ANY,
    m.Connectivity.CONNECTIVITY_ONLINE: ConnectivityFilter.ONLINE,
    m.Connectivity.CONNECTIVITY_OFFLINE: ConnectivityFilter.OFFLINE,
    m.Connectivity.CONNECTIVITY_NEVER_SEEN: ConnectivityFilter.NEVER_SEEN,
    m.Connectivity.CONNECTIVITY_STOPPED: ConnectivityFilter.STOPPED,
}


def connectivity_of(record: NodeRecord, online_since: datetime.datetime) -> m.Connectivity:
    """The same rule ``NodeStore.list_nodes`` filters with (SPEC 4.5, 4.10): a node that
    said goodbye is STOPPED until its next heartbeat, whatever --offline-after says."""
    if record.liveness is Liveness.STOPPED:
        return m.Connectivity.CONNECTIVITY_STOPPED
    if record.last_seen_at is None:
        return m.Connectivity.CONNECTIVITY_NEVER_SEEN
    if record.last_seen_at >= online_since:
        return m.Connectivity.CONNECTIVITY_ONLINE
    return m.Connectivity.CONNECTIVITY_OFFLINE


def facts_of(facts: NodeFactsRecord | None) -> m.NodeFacts | None:
    if facts is None:
        return None
    return m.NodeFacts(
        agent_version=facts.agent_version,
        hostname=facts.hostname,
        os=facts.os,
        boot_id=facts.boot_id,
        python_version=facts.python_version,
    )


def summary_of(record: NodeRecord, online_since: datetime.datetime) -> m.FleetNodeSummary:
    """A listed node as the admin API shows it."""
    return m.FleetNodeSummary(
        fleet_node_id=m.Int64(record.fleet_node_id),
        name=record.name,
        enrollment_status=_STATUS[record.status],
        identity_fingerprint=record.identity_fingerprint,
        created_at=record.created_at,
        last_seen_at=record.last_seen_at,
        connectivity=connectivity_of(record, online_since),
        clock_skew_ms=None if record.clock_skew_ms is None else m.Int64(record.clock_skew_ms),
        facts=facts_of(record.facts),
    )


class Admin:
    def __init__(
        self,
        nodes: NodeStore,
        enrollments: EnrollmentStore,
        config: Config,
        clock: Clock,
        on_revoked: Callable[[int], None],
    ) -> None:
        self._nodes = nodes
        self._enrollments = enrollments
        self._config = config
        self._clock = clock
        self._on_revoked = on_revoked

    async def list_nodes(
        self, p: AdminPrincipal, req: m.ListFleetNodesRequest
    ) -> m.ListFleetNodesResponse:
        page_size = req.page_size or m.DEFAULT_PAGE_SIZE
        before_id = decode_page_token(req.page_token)
        now = self._clock()
        online_since = now - datetime.timedelta(seconds=self._config.offline_after_seconds)
        records = await self._nodes.list_nodes(
            p.org_id, before_id, page_size + 1, _FILTER[req.connectivity], online_since
        )
        page, more = records[:page_size], len(records) > page_size
        nodes = tuple(summary_of(record, online_since) for record in page)
        next_token = encode_page_token(page[-1].fleet_node_id) if more and page else ""
        return m.ListFleetNodesResponse(fleet_nodes=nodes, next_page_token=next_token)

    async def confirm(
        self, p: AdminPrincipal, req: m.ConfirmFleetNodeRequest
    ) -> m.ConfirmFleetNodeResponse:
        api_key = s.new_api_key()
        outcome = await self._enrollments.confirm_node(
            p.org_id, req.fleet_node_id, self._clock(), s.digest(api_key)
        )
        if outcome is ConfirmOutcome.NOT_FOUND:
            raise NotFound(NODE_NOT_FOUND)
        if outcome is not ConfirmOutcome.CONFIRMED:
            raise FailedPrecondition(CONFIRM_REFUSED[outcome])
        logger.info("fleet node confirmed fleet_node_id=%s", req.fleet_node_id)
        return m.ConfirmFleetNodeResponse(api_key=api_key)

    async def revoke(self, p: AdminPrincipal, req: m.RevokeFleetNodeRequest) -> m.Empty:
        if not await self._nodes.revoke_node(p.org_id, req.fleet_node_id, self._clock()):
            raise NotFound(NODE_NOT_FOUND)
        # This replica forgets the node at once; the others through NOTIFY.
        self._on_revoked(req.fleet_node_id)
        logger.info("fleet node revoked fleet_node_id=%s", req.fleet_node_id)
        return m.Empty()
