"""server.serve: the reusable serving loop (serve, dev, demo) drains before it stops."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest

from fleetwire import messages as m
from gateway import server
from gateway.app import create_app
from gateway.config import Config
from gateway.metrics import Metrics
from gateway.services import Services, open_services
from tests.support.gateway_http import enroll, heartbeat, new_admin_token

pytestmark = pytest.mark.asyncio


@attrs.define
class GatedHeartbeats:
    """Heartbeats that wait for the test's permission before answering."""

    entered: asyncio.Event = attrs.Factory(asyncio.Event)
    release: asyncio.Event = attrs.Factory(asyncio.Event)

    async def record(self, principal: Any, req: Any) -> m.UploadHeartbeatResponse:
        self.entered.set()
        await self.release.wait()
        now = datetime.datetime.now(datetime.UTC)
        return m.UploadHeartbeatResponse(received_at=now, heartbeat_interval_seconds=30)


async def wait_listener_closed(port: int) -> None:
    """Until a new connection is refused: the server stopped accepting."""
    async with asyncio.timeout(10):
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except (ConnectionRefusedError, ConnectionResetError):  # reset: closed mid-accept
                return
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.01)


async def test_stop_drains_the_request_in_flight(database_url: str) -> None:
    """After stop, the listener closes at once but a request in flight still gets its answer."""
    gated = GatedHeartbeats()

    @contextlib.asynccontextmanager
    async def opener(config: Config, metrics: Metrics) -> AsyncIterator[Services]:
        async with open_services(config, metrics) as opened:
            yield attrs.evolve(opened, heartbeats=gated)

    config = Config(database_url=database_url, port=0)
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    serving = asyncio.create_task(
        server.serve(
            config, listening.set_result, stop=stop, app=create_app(config, open_services=opener)
        )
    )
    try:
        port = await asyncio.wait_for(listening, 30)
        admin = await new_admin_token(database_url)
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
            node = await enroll(http, admin, "draining")  # type: ignore[arg-type]
            in_flight = asyncio.create_task(heartbeat(http, node.session_token))  # type: ignore[arg-type]
            await gated.entered.wait()
            stop.set()
            await wait_listener_closed(port)
            assert not serving.done()
            gated.release.set()
            reply = await in_flight
        assert reply.status == 200
        await asyncio.wait_for(serving, 30)
    finally:
        stop.set()
        gated.release.set()
        await asyncio.wait_for(serving, 30)
