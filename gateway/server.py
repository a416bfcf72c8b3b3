"""Running the gateway app on a TCP port until told to stop (``serve``; reused by dev/demo).

Stopping drains: the listening socket closes, in-flight requests finish (up to
``DRAIN_TIMEOUT_SECONDS``), then the services' cleanup flushes pending writes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from gateway.app import create_app
from gateway.config import Config

logger = logging.getLogger(__name__)
# Records scripts rely on, shown whatever --log-level says (gateway.logging_setup).
announce = logging.getLogger("gateway.announce")

DRAIN_TIMEOUT_SECONDS = 30.0
# aiohttp closes a connection that has not sent a complete request this long after it
# opened or after its last answer: it bounds idle keep-alive connections *and* a slowloris
# dribbling headers (AppRunner's own default is 3630 s). Longer than nginx's upstream
# keepalive_timeout (60 s), so nginx never sends on a connection the gateway is closing.
IDLE_TIMEOUT_SECONDS = 75.0


class ListenError(Exception):
    """The address cannot be bound (in use, not local, not permitted); says which."""


def url_for(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    config: Config,
    ready: Callable[[int], None] | None = None,
    *,
    stop: asyncio.Event | None = None,
    app: web.Application | None = None,
    idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS,
    any_port_if_taken: bool = False,
) -> None:
    """Serve ``app`` (default: ``create_app(config)``) on ``config.host:config.port``
    until ``stop`` is set (or forever, until cancelled), then drain and clean up.

    ``ready(port)`` is called once the socket listens, with the actual port (so
    ``config.port == 0`` works). ``idle_timeout_seconds`` bounds a connection that sends
    no complete request (idle, or a slowloris). :class:`ListenError` when the address
    cannot be bound; with ``any_port_if_taken`` (``dev``) a port in use is replaced by
    one the kernel picks, in the same bind (no check-then-bind race).
    """
    runner = web.AppRunner(
        app or create_app(config),
        handle_signals=False,
        shutdown_timeout=DRAIN_TIMEOUT_SECONDS,
        keepalive_timeout=idle_timeout_seconds,
    )
    await runner.setup()  # enters the cleanup contexts: opens the services
    try:
        try:
            await web.TCPSite(
                runner, config.host, config.port, reuse_port=config.reuse_port or None
            ).start()
        except OSError as exc:
            if not (any_port_if_taken and exc.errno == errno.EADDRINUSE):
                url = url_for(config.host, config.port)
                raise ListenError(f"cannot listen on {url}: {exc.strerror or exc}") from exc
            await web.TCPSite(runner, config.host, 0).start()
        port = _bound_port(runner, config.port)
        url = url_for(config.host, port)
        # The event text holds the URL so scripts find "listening on http://HOST:PORT"
        # in text and JSON logs alike (port 0 picks the port), at every log level.
        announce.info("listening on %s", url, extra={"url": url})
        if config.metrics_port is not None:
            await _serve_metrics(runner, config.host, config.metrics_port)
        if ready is not None:
            ready(port)
        await (stop or asyncio.Event()).wait()
        logger.info("stopping: draining in-flight requests")
    finally:
        await runner.cleanup()
        logger.info("stopped")


async def _serve_metrics(runner: web.AppRunner, host: str, port: int) -> None:
    """The same app on a port of this process alone (never SO_REUSEPORT), so a monitor
    reaches each replica that shares the main port; it is meant for /metrics, /healthz
    and /readyz on the monitoring network."""
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        url = url_for(host, port)
        raise ListenError(f"cannot serve metrics on {url}: {exc.strerror or exc}") from exc
    # Sites are listed in the order they started: this one is the last.
    url = url_for(host, _bound_port(runner, port, -1))
    announce.info("metrics on %s/metrics", url, extra={"url": url})


def _bound_port(runner: web.AppRunner, fallback: int, index: int = 0) -> int:
    address = runner.addresses[index] if runner.addresses else None
    if isinstance(address, tuple) and len(address) >= 2:
        return int(address[1])
    return fallback


async def serve_until_signalled(
    config: Config,
    ready: Callable[[int], None] | None = None,
    *,
    any_port_if_taken: bool = False,
) -> None:
    """:func:`serve` until SIGTERM or SIGINT (then drain, flush, return)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(config, ready, stop=stop, any_port_if_taken=any_port_if_taken)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
