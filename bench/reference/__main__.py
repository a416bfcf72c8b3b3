"""``python -m bench.reference``: the minimal aiohttp POST handler for the product's heartbeat.

The ceiling of bench.heartbeats (issue 11): what aiohttp itself needs to serve the very
request the gateway serves, in a process of its own, measured in the same run with the same
generator. The handler does the least the product's heartbeat must do: read the JSON body,
look the bearer token up in a dict of the same tokens, decode it (``sentAt`` parsed as a
timestamp), answer the gateway's response body (``receivedAt``, ``heartbeatIntervalSeconds``)
with the gateway's headers. No database, no metrics, no limits: everything above this is
the product's own cost. ``GET /healthz`` answers like the gateway's.

Runs with the event loop the gateway runs with (``--loop``), and, like the gateway, without
an access log and with automatic decompression off. Prints ``listening on http://HOST:PORT``
on stderr, as the gateway does.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

HEARTBEAT_PATH = "/fleetnodegateway.v1.FleetNodeGatewayService/UploadHeartbeat"
INTERVAL_SECONDS = 30
JSON = "application/json"
UNAUTHENTICATED = b'{"code":"unauthenticated","message":"invalid or expired session"}'
TOKENS = web.AppKey("tokens", dict)


def _received_at(now: datetime.datetime) -> str:
    text = now.replace(tzinfo=None).isoformat(timespec="microseconds")
    return text + "Z"


async def upload_heartbeat(request: web.Request) -> web.Response:
    body = await request.read()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or request.app[TOKENS].get(token) is None:
        return web.Response(status=401, body=UNAUTHENTICATED, content_type=JSON)
    sent_at = datetime.datetime.fromisoformat(json.loads(body)["sentAt"])
    del sent_at  # decoded as the product decodes it; a reference has no use for it
    answer = json.dumps(
        {
            "receivedAt": _received_at(datetime.datetime.now(datetime.UTC)),
            "heartbeatIntervalSeconds": INTERVAL_SECONDS,
        },
        separators=(",", ":"),
    ).encode()
    return web.Response(body=answer, content_type=JSON, headers={"Vary": "Accept-Encoding"})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def create_app(tokens: Sequence[str]) -> web.Application:
    app = web.Application(handler_args={"auto_decompress": False, "access_log": None})
    app[TOKENS] = {token: index for index, token in enumerate(tokens)}
    app.router.add_get("/healthz", healthz)
    app.router.add_post(HEARTBEAT_PATH, upload_heartbeat)
    return app


async def serve(app: web.Application, host: str, port: int, reuse_port: bool) -> None:
    runner = web.AppRunner(app, handle_signals=True, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        bound = next(a[1] for a in runner.addresses if isinstance(a, tuple))
        print(f"listening on http://{host}:{bound}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=Path, required=True, help="one bearer token a line")
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    tokens = args.tokens.read_text(encoding="utf-8").split()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(serve(create_app(tokens), args.host, args.port, args.reuse_port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
