"""The gateway's aiohttp application: routes, health endpoints, and the services' lifetime.

``create_app`` does no I/O: the services (pool, writer, listener, sweeper) are opened by a
cleanup context when the app starts and closed, after in-flight requests drained, when it
stops. Every path that is not a health endpoint is a Connect procedure (or an unknown one).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fleetwire import procedures
from gateway import services
from gateway.admission import Admission
from gateway.config import Config
from gateway.connect import ConnectEndpoint
from gateway.metrics import Metrics, new_metrics
from gateway.ratelimit import Clock, new_rate_limits
from gateway.readiness_cache import CachedProbe
from gateway.rpcs import rpc_table

OpenServices = Callable[
    [Config, Metrics], contextlib.AbstractAsyncContextManager[services.Services]
]

METRICS_KEY = web.AppKey("metrics", Metrics)
SERVICES_KEY = web.AppKey("services", services.Services)
CONNECT_KEY = web.AppKey("connect", ConnectEndpoint)
READINESS_KEY = web.AppKey("readiness", CachedProbe)

# How long a load balancer should wait before asking /readyz again.
NOT_READY_RETRY_AFTER_SECONDS = 5


class ProtocolErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, minus the text of HTTP protocol errors: that text quotes the
    offending raw request line (e.g. ``Invalid header value char: b'Authorization: Bearer
    <token>\\x00'``), which would put a caller's secret in the log. Other exceptions keep
    their traceback."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            kwargs["exc_info"] = None
            msg = f"{msg}: %s (its text is withheld: it quotes the raw request)"
            args = (*args, type(exc).__name__)
        super().log(level, msg, *args, **kwargs)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    if await request.app[READINESS_KEY].check():
        return web.Response(text="ready\n")
    return web.Response(
        status=503,
        text="not ready\n",
        headers={"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS)},
    )


async def prometheus_metrics(request: web.Request) -> web.Response:
    # fleet_gateway_ready is set by the readiness probe: a scrape runs it (cached, at most
    # one query a second) so the gauge is current even where nothing polls /readyz.
    await request.app[READINESS_KEY].check()
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def connect_call(request: web.Request) -> web.StreamResponse:
    return await request.app[CONNECT_KEY].handle(request)


def create_app(
    config: Config,
    *,
    open_services: OpenServices = services.open_services,
    clock: Clock = time.monotonic,
) -> web.Application:
    """The gateway app; ``open_services`` and ``clock`` (the monotonic clock of the rate
    limits and of /readyz's cached probe) are test seams."""
    # The adapter reads bodies itself (to cap gzip), and logs each call with the
    # client address resolved behind trusted proxies, so aiohttp does neither.
    app = web.Application(
        handler_args={
            "auto_decompress": False,
            "access_log": None,
            "logger": ProtocolErrorLog(server_logger),
        }
    )
    metrics = app[METRICS_KEY] = new_metrics()
    limits = new_rate_limits(
        auth_rate=config.auth_rate,
        auth_burst=config.auth_burst,
        heartbeat_rate=config.node_heartbeat_rate,
        heartbeat_burst=config.node_heartbeat_burst,
        clock=clock,
    )

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(config, metrics) as opened:
            app[SERVICES_KEY] = opened
            app[READINESS_KEY] = CachedProbe(opened.readiness.check, clock)
            app[CONNECT_KEY] = ConnectEndpoint(
                rpcs={rpc.procedure.path: rpc for rpc in rpc_table(opened)},
                authenticator=opened.auth,
                admission=Admission(limits, metrics),
                metrics=metrics,
                trusted_proxies=config.trusted_proxies,
            )
            yield

    app.cleanup_ctx.append(services_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus_metrics)
    # Each procedure's own path first (a lookup in the router's index, where the catch-all
    # is a pattern to match); the catch-all answers unknown paths (404).
    for procedure in procedures.ALL:
        app.router.add_route("*", procedure.path, connect_call)
    app.router.add_route("*", "/{tail:.*}", connect_call)
    return app
