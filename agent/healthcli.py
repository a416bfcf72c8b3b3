"""The command lines of ``fleetnode check`` and ``fleetnode watchdog`` (SPEC 5.11):
their arguments, and the commands run from them. ``__main__`` adds them to its parser and
passes the environment in (it alone reads it)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from agent import check, watchdog
from agent.durationarg import duration_seconds
from agent.errors import ConfigurationError
from agent.runtime import Runtime
from agent.statedir import StateStore

MAX_AGE_HELP = "the oldest acknowledged heartbeat that counts (default: 3 x its interval)"


def max_age(text: str) -> float:
    """A DURATION above 0 (``90s``, ``1m30s``; a bare number is seconds)."""
    seconds = duration_seconds(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return seconds


def failure_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return count


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """``check`` and ``watchdog``, with the global options as every command has them."""
    p_check = commands.add_parser(
        "check",
        parents=[common],
        help="exit 0 if the daemon runs and heartbeats, else 1 (one line says why)",
    )
    p_check.add_argument("--max-age", type=max_age, metavar="DURATION", help=MAX_AGE_HELP)

    p_watchdog = commands.add_parser(
        "watchdog",
        parents=[common],
        help="supervisord event listener: restart the daemon's program when check fails",
    )
    p_watchdog.add_argument(
        "--program", required=True, help="the daemon's program name in supervisord"
    )
    p_watchdog.add_argument("--max-age", type=max_age, metavar="DURATION", help=MAX_AGE_HELP)
    p_watchdog.add_argument(
        "--failures",
        type=failure_count,
        default=watchdog.DEFAULT_FAILURES,
        metavar="N",
        help=f"failed checks in a row before a restart (default {watchdog.DEFAULT_FAILURES})",
    )
    p_watchdog.add_argument(
        "--supervisor-url",
        metavar="URL",
        help="supervisord's XML-RPC server, unix:///path/to.sock or http://127.0.0.1:9001 "
        "(default: SUPERVISOR_SERVER_URL, which supervisord gives its event listeners)",
    )
    p_watchdog.set_defaults(supervisor_username="", supervisor_password="")


def read_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """For ``watchdog``: supervisord's URL when no flag gave one (SUPERVISOR_SERVER_URL)
    and its credentials (SUPERVISOR_USERNAME/PASSWORD, as supervisor's own listeners read
    them; never flags, which any user sees in the process list)."""
    if args.command != "watchdog":
        return
    args.supervisor_url = args.supervisor_url or environ.get("SUPERVISOR_SERVER_URL", "")
    args.supervisor_username = environ.get("SUPERVISOR_USERNAME", "")
    args.supervisor_password = environ.get("SUPERVISOR_PASSWORD", "")


def run_check(args: argparse.Namespace, store: StateStore, runtime: Runtime) -> int:
    return check.run_check(store.directory, runtime, args.max_age)


async def run_watchdog(args: argparse.Namespace, store: StateStore, runtime: Runtime) -> None:
    if not args.supervisor_url:
        raise ConfigurationError(
            "no supervisord to talk to: run the watchdog as a supervisord event listener "
            "(which sets SUPERVISOR_SERVER_URL) or give --supervisor-url"
        )
    options = watchdog.WatchdogOptions(
        program=args.program, failures=args.failures, max_age_seconds=args.max_age
    )
    settings = watchdog.SupervisorSettings(
        url=args.supervisor_url,
        username=args.supervisor_username,
        password=args.supervisor_password,
    )
    await watchdog.run_watchdog(store.directory, runtime, options, settings)
