"""The heartbeat service (SPEC 4.1-4.3, 4.6, 4.7, 4.10, 4.11).

``last_seen_at`` is the gateway's time of receipt, never the node's. A heartbeat is
answered only once its outcome is durable: ``last_seen_at`` is already within the
debounce window, or the (group-committed) write advancing it has committed. The
node's clock skew (its ``sentAt`` minus our receipt time) rides along with that
write, never in an extra one. A goodbye (``stopping``) and facts ride the same write;
the write records the node's connectivity events (``gateway.writer``).
"""

from __future__ import annotations

import datetime

from fleetwire import messages as m
from gateway.clock import Clock
from gateway.config import Config
from gateway.errors import InvalidArgument, NotFound
from gateway.metrics import Metrics
from gateway.principals import NodePrincipal
from gateway.store.records import NodeFactsRecord
from gateway.writer import LastSeenWriter, WriteOutcome

NODE_GONE = "fleet node not found"


def facts_record(facts: m.NodeFacts) -> NodeFactsRecord:
    return NodeFactsRecord(
        agent_version=facts.agent_version,
        hostname=facts.hostname,
        os=facts.os,
        boot_id=facts.boot_id,
        python_version=facts.python_version,
    )


def skew_ms(sent_at: datetime.datetime, received_at: datetime.datetime) -> int:
    """Node clock minus gateway clock, positive when the node is ahead."""
    return round((sent_at - received_at) / datetime.timedelta(milliseconds=1))


class Heartbeats:
    def __init__(
        self, writer: LastSeenWriter, config: Config, metrics: Metrics, clock: Clock
    ) -> None:
        self._writer = writer
        self._interval = m.Int32(int(config.heartbeat_interval_seconds))
        self._metrics = metrics
        self._clock = clock

    async def record(
        self, principal: NodePrincipal, req: m.UploadHeartbeatRequest
    ) -> m.UploadHeartbeatResponse:
        if req.sent_at is None:
            raise InvalidArgument("sentAt: required")
        received_at = self._clock()
        self._metrics.heartbeats_received.inc()
        node_id = principal.fleet_node_id
        facts = None if req.facts is None else facts_record(req.facts)
        # A goodbye is written at once, and facts the database may not hold yet are
        # written with this heartbeat: neither may stop at the in-process debounce.
        if (
            not req.stopping
            and facts is None
            and self._writer.recently_written(node_id, received_at)
        ):
            self._metrics.heartbeats_debounced.inc()
        else:
            outcome = await self._writer.submit(
                node_id,
                received_at,
                skew_ms(req.sent_at, received_at),
                stopping=req.stopping,
                facts=facts,
            )
            if outcome is WriteOutcome.NOT_FOUND:
                raise NotFound(NODE_GONE)
            if outcome is WriteOutcome.DEBOUNCED:
                self._metrics.heartbeats_debounced.inc()
        return m.UploadHeartbeatResponse(
            received_at=received_at, heartbeat_interval_seconds=self._interval
        )
