"""``fleet-gateway dev`` and ``fleet-gateway demo``: the gateway with no setup at all.

Both start a private PostgreSQL from the host's binaries (``gateway.dev.workspace``),
apply the schema, create organization ``default`` and an admin token, and serve
on 127.0.0.1:8080 (or a free port, said out loud, when 8080 is taken).
``dev`` serves until Ctrl-C and keeps its data; ``demo`` also runs a small fleet
of real ``fleetnode`` processes for a while, then removes everything it made
unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import attrs

from fleetwire.durations import parse_duration
from gateway import server
from gateway.cli_config import Command, Invocation
from gateway.commands import create_admin_token
from gateway.config import Config, ConfigError
from gateway.dev.fleet import DemoError, open_fleet, run_demo
from gateway.dev.pgcluster import Cluster, ClusterError
from gateway.dev.workspace import demo_cluster, dev_cluster, start
from gateway.principals import Role
from gateway.store import oneshot, schema

ORG = "default"
# Demo: nodes heartbeat every 5 s and "last seen" moves at least every 2 s.
DEMO_HEARTBEAT_SECONDS = 5.0
DEMO_DEBOUNCE_SECONDS = 2.0
DEMO_OFFLINE_AFTER_SECONDS = 15.0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _dev_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pg-bindir", help="PostgreSQL server binaries (default: found)")


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    _dev_arguments(parser)
    parser.add_argument("--nodes", type=_positive_int, default=3, help="fleet size (default 3)")
    parser.add_argument(
        "--duration", type=_duration, default=30.0, help="how long the nodes run (default 30s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the cluster and the nodes' state")


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError("use a whole number from 1 to 100")
    return int(text)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@contextlib.asynccontextmanager
async def _embedded_database(
    config: Config, make: Callable[[], Cluster], remove: bool
) -> AsyncIterator[str]:
    """The database URL: ``--database-url`` if given, else a private cluster started now
    and stopped (and removed, when ``remove``) on the way out."""
    if config.database_url:
        yield config.database_url
        return
    try:
        cluster = make()
    except ClusterError as exc:
        raise ConfigError(str(exc)) from exc
    _say(f"starting PostgreSQL in {cluster.root}")
    try:
        try:
            url = await asyncio.to_thread(start, cluster)
        except ClusterError as exc:
            raise ConfigError(f"{exc} (log: {cluster.log_file})") from exc
        yield url
    finally:
        await asyncio.shield(asyncio.to_thread(cluster.destroy if remove else cluster.stop))
        _say(
            "PostgreSQL removed" if remove else f"PostgreSQL stopped (data kept in {cluster.root})"
        )


async def _bootstrap(database_url: str, label: str) -> str:
    await schema.migrate(database_url)
    await oneshot.ensure_org(database_url, ORG)
    return await create_admin_token(database_url, ORG, Role.ADMIN, label)


async def _dev(invocation: Invocation) -> int:
    args, config = invocation.args, invocation.config
    cwd = Path.cwd()
    async with _embedded_database(
        config, lambda: dev_cluster(cwd, args.pg_bindir), remove=False
    ) as url:
        token = await _bootstrap(url, "dev")
        serving = attrs.evolve(config, database_url=url)

        def ready(port: int) -> None:
            base = server.url_for(serving.host, port)
            if port != serving.port:
                _say(f"port {serving.port} is taken; using {port}")
            _say(
                f"fleet-gateway dev: serving on {base}\n\n"
                f"  export FLEET_SERVER_URL={base}\n"
                f"  export FLEET_ADMIN_TOKEN={token}\n"
                "  fleetctl create-code\n"
                f"  fleetnode --state-dir ./node-1 enroll --server-url {base} --name node-1\n"
                "  fleetctl nodes; fleetctl confirm <ID>   # then paste the api key into enroll\n"
                "  fleetnode --state-dir ./node-1 run\n\n"
                "Ctrl-C stops the gateway and PostgreSQL (data is kept under ./.fleet-dev)."
            )

        await server.serve_until_signalled(serving, ready, any_port_if_taken=True)
    return 0


async def _demo(invocation: Invocation) -> int:
    args, config = invocation.args, invocation.config
    cwd = Path.cwd()
    config = attrs.evolve(
        config,
        heartbeat_interval_seconds=DEMO_HEARTBEAT_SECONDS,
        last_seen_debounce_seconds=DEMO_DEBOUNCE_SECONDS,
        offline_after_seconds=DEMO_OFFLINE_AFTER_SECONDS,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, main_task.cancel)
    state_root = Path(tempfile.mkdtemp(prefix="fleet-demo-nodes-"))
    ok = False
    try:
        async with _embedded_database(
            config, lambda: demo_cluster(cwd, args.pg_bindir), remove=not args.keep
        ) as url:
            token = await _bootstrap(url, "demo")
            serving = attrs.evolve(config, database_url=url)
            listening: asyncio.Future[int] = loop.create_future()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(
                    server.serve(serving, listening.set_result, stop=stop, any_port_if_taken=True)
                )
                try:
                    port = await listening
                    if port != serving.port:
                        _say(f"port {serving.port} is taken; using {port}")
                    base = server.url_for(serving.host, port)
                    _say(f"fleet-gateway demo: gateway on {base}, {args.nodes} nodes")
                    async with open_fleet(base, token, state_root, invocation.env) as fleet:
                        ok = await run_demo(
                            fleet, args.nodes, args.duration, DEMO_HEARTBEAT_SECONDS, sys.stdout
                        )
                finally:
                    stop.set()
    except DemoError as exc:
        _say(f"fleet-gateway demo: {exc}")
    except asyncio.CancelledError:
        _say("fleet-gateway demo: interrupted; everything it started has been stopped")
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if args.keep:
            _say(f"nodes' state kept in {state_root}")
        else:
            shutil.rmtree(state_root, ignore_errors=True)
    return 0 if ok else 1


COMMANDS: tuple[Command, ...] = (
    Command(
        "dev",
        "serve with an embedded PostgreSQL under ./.fleet-dev (no setup)",
        _dev,
        _dev_arguments,
        needs_database=False,
    ),
    Command(
        "demo",
        "like dev, then enroll and run real fleetnode processes and show the fleet",
        _demo,
        _demo_arguments,
        needs_database=False,
    ),
)
