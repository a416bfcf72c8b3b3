"""The gateway's aiohttp application: routes, health endpoints, and the runtime's lifetime.

``create_app`` does no I/O: the runtime (pool, writer, listener, sweeper) is
opened by a cleanup context when the app starts and closed, after in-flight
requests drained, when it stops.
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

from fleetwire import messages as m
from fleetwire import procedures as p
from gateway import runtime
from gateway.config import Config
from gateway.connect import AuthKind, Context, Limit, Rpc, handle_unary, handle_unknown
from gateway.metrics import Metrics, new_metrics
from gateway.ratelimit import Clock, new_rate_limits

OpenRuntime = Callable[[Config, Metrics], contextlib.AbstractAsyncContextManager[runtime.Runtime]]

METRICS_KEY = web.AppKey("metrics", Metrics)
RUNTIME_KEY = web.AppKey("runtime", runtime.Runtime)
CONTEXT_KEY = web.AppKey("context", Context)

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


async def _register(rt: runtime.Runtime, _: Any, req: m.RegisterRequest) -> m.RegisterResponse:
    return await rt.enrollment.register(req)


async def _begin(
    rt: runtime.Runtime, _: Any, req: m.BeginAuthHandshakeRequest
) -> m.BeginAuthHandshakeResponse:
    return await rt.auth.begin(req)


async def _complete(
    rt: runtime.Runtime, _: Any, req: m.CompleteAuthHandshakeRequest
) -> m.CompleteAuthHandshakeResponse:
    return await rt.auth.complete(req)


async def _heartbeat(
    rt: runtime.Runtime, principal: Any, req: m.UploadHeartbeatRequest
) -> m.UploadHeartbeatResponse:
    return await rt.heartbeats.record(principal, req)


async def _create_code(rt: runtime.Runtime, principal: Any, req: Any) -> Any:
    return await rt.admin.create_code(principal, req)


async def _list_nodes(rt: runtime.Runtime, principal: Any, req: Any) -> Any:
    return await rt.admin.list_nodes(principal, req)


async def _confirm(rt: runtime.Runtime, principal: Any, req: Any) -> Any:
    return await rt.admin.confirm(principal, req)


async def _revoke(rt: runtime.Runtime, principal: Any, req: Any) -> Any:
    return await rt.admin.revoke(principal, req)


RPCS: tuple[Rpc, ...] = (
    Rpc(p.REGISTER, AuthKind.NONE, _register, Limit.AUTH),
    Rpc(p.BEGIN_AUTH_HANDSHAKE, AuthKind.NONE, _begin, Limit.AUTH),
    Rpc(p.COMPLETE_AUTH_HANDSHAKE, AuthKind.NONE, _complete, Limit.AUTH),
    Rpc(p.UPLOAD_HEARTBEAT, AuthKind.NODE, _heartbeat, Limit.HEARTBEAT),
    Rpc(p.UPLOAD_TELEMETRY, AuthKind.NODE, None),
    Rpc(p.UPLOAD_EVENTS, AuthKind.NODE, None),
    Rpc(p.CREATE_ENROLLMENT_CODE, AuthKind.ADMIN, _create_code),
    Rpc(p.LIST_FLEET_NODES, AuthKind.ADMIN, _list_nodes),
    Rpc(p.CONFIRM_FLEET_NODE, AuthKind.ADMIN, _confirm),
    Rpc(p.REVOKE_FLEET_NODE, AuthKind.ADMIN, _revoke),
    Rpc(p.LIST_ENROLLMENT_CODES, AuthKind.ADMIN, None),
    Rpc(p.REVOKE_ENROLLMENT_CODE, AuthKind.ADMIN, None),
    Rpc(p.LIST_FLEET_NODE_EVENTS, AuthKind.ADMIN, None),
    Rpc(p.GET_FLEET_SUMMARY, AuthKind.ADMIN, None),
)


def _rpc_handler(rpc: Rpc) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await handle_unary(request, rpc, request.app[CONTEXT_KEY])

    return handle


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    if await request.app[RUNTIME_KEY].check_ready():
        return web.Response(text="ready\n")
    return web.Response(
        status=503,
        text="database unavailable\n",
        headers={"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS)},
    )


async def prometheus_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    config: Config,
    *,
    open_runtime: OpenRuntime = runtime.open_runtime,
    clock: Clock = time.monotonic,
) -> web.Application:
    """The gateway app; ``open_runtime`` and ``clock`` are seams for tests."""
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

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_runtime(config, metrics) as rt:
            app[RUNTIME_KEY] = rt
            app[CONTEXT_KEY] = Context(
                runtime=rt, metrics=metrics, limits=limits, trusted_proxies=config.trusted_proxies
            )
            yield

    app.cleanup_ctx.append(runtime_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus_metrics)
    for rpc in RPCS:
        app.router.add_route("*", rpc.procedure.path, _rpc_handler(rpc))
    app.router.add_route("*", "/{tail:.*}", handle_unknown)
    return app
