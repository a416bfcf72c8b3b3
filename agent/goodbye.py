"""The daemon's goodbye (SPEC 4.10): one last heartbeat with ``stopping: true``.

Sent after SIGINT/SIGTERM, when the three tasks have ended, so the gateway shows the node
STOPPED instead of, 150 s later, OFFLINE. It gets 300 ms and one try: the exit (within 1 s
of the signal) never waits for a gateway that is slow or down.
"""

from __future__ import annotations

import logging

import trio

from agent.client import GatewayClient
from agent.errors import GatewayError
from agent.runtime import WallClock
from agent.session import SessionHolder
from fleetwire import messages as m
from fleetwire.procedures import UPLOAD_HEARTBEAT

logger = logging.getLogger(__name__)

GOODBYE_SECONDS = 0.3


async def say_goodbye(client: GatewayClient, holder: SessionHolder, wall_clock: WallClock) -> bool:
    """Send the goodbye heartbeat; whether the gateway acknowledged it. Never retried."""
    if holder.session is None:
        logger.info("no session, so no goodbye to the gateway")
        return False
    request = m.UploadHeartbeatRequest(sent_at=wall_clock(), stopping=True)
    with trio.move_on_after(GOODBYE_SECONDS):
        try:
            await client.call(UPLOAD_HEARTBEAT, request)
        except GatewayError as exc:
            logger.info("goodbye not delivered (%s)", exc)
            return False
        logger.info("said goodbye to the gateway")
        return True
    logger.info("goodbye not delivered: no answer within %.0f ms", GOODBYE_SECONDS * 1000)
    return False
