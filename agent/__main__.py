"""The ``fleetnode`` program: arguments, logging, the event loop and the exit codes.

The only module that reads ``os.environ``, configures logging or starts Trio.
Exit codes (SPEC 5.9): 0 success or signal shutdown; 1 unexpected failure; 2 usage error;
69 gateway unreachable (one-shot commands); 75 state locked; 77 credentials rejected or node
gone (re-enroll); 78 configuration or state problem.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import trio

from agent import daemon, enroll, healthcli, logs, refresh, status
from agent.durationarg import duration_seconds
from agent.errors import (
    AgentError,
    ConfigurationError,
    CredentialsRejected,
    GatewayUnavailable,
    NodeGone,
    StateLocked,
)
from agent.heartbeat import MIN_FLAG_INTERVAL_SECONDS
from agent.runtime import Runtime
from agent.statedir import StateStore

logger = logging.getLogger("agent")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 69
EXIT_LOCKED = 75
EXIT_REJECTED = 77
EXIT_CONFIG = 78


def heartbeat_interval(text: str) -> float:
    """A DURATION of at least 1 s (``30s``, ``1m``; a bare number is seconds)."""
    seconds = duration_seconds(text)
    if seconds < MIN_FLAG_INTERVAL_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at least 1s, got {text!r}")
    return seconds


def enroll_timeout(text: str) -> float:
    """A DURATION of 0 or more (``10m``; a bare number is seconds; 0: a single attempt)."""
    seconds = duration_seconds(text)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must be a duration of 0 or more, got {text!r}")
    return seconds


def _global_options(defaults: bool) -> argparse.ArgumentParser:
    # The same options work before and after the command; SUPPRESS keeps a value given
    # before the command from being reset by the subcommand's defaults.
    parser = argparse.ArgumentParser(add_help=False)
    default = None if defaults else argparse.SUPPRESS
    parser.add_argument(
        "--state-dir",
        default=default,
        help="state directory (env FLEETNODE_STATE_DIR; default "
        "$XDG_STATE_HOME/fleetnode, else ~/.local/state/fleetnode)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text" if defaults else argparse.SUPPRESS,
        help="log line format on stderr (default text)",
    )
    parser.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        default="info" if defaults else argparse.SUPPRESS,
        help="lowest level logged (default info)",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetnode",
        description="Fleet node agent: enroll once, then run the heartbeat daemon.",
        parents=[_global_options(defaults=True)],
    )
    common = _global_options(defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_enroll = commands.add_parser(
        "enroll",
        parents=[common],
        help="register this node with a gateway (code and api key read from stdin, or the "
        "code from --code-file)",
    )
    p_enroll.add_argument("--server-url", required=True, help="the gateway, https://host[:port]")
    p_enroll.add_argument("--name", help="node name (default: the host name)")
    p_enroll.add_argument(
        "--force",
        action="store_true",
        help="replace an enrolled state (one that registered but holds no api key yet, for "
        "the same server and name, is resumed with its identity key)",
    )
    p_enroll.add_argument(
        "--allow-insecure-transport",
        action="store_true",
        help="allow plain http to a non-loopback host (not for production)",
    )
    p_enroll.add_argument("--ca-file", metavar="PEM", help="CA bundle to verify the gateway")
    p_enroll.add_argument(
        "--code-file",
        type=Path,
        metavar="PATH",
        help="read the enrollment code from this file (yours, mode 0600) instead of stdin; "
        "with a pre-approved code enroll then needs no input at all",
    )
    p_enroll.add_argument(
        "--enroll-timeout",
        type=enroll_timeout,
        default=enroll.DEFAULT_ENROLL_TIMEOUT_SECONDS,
        metavar="DURATION",
        help="keep retrying Register and the handshake through outages and rate limits "
        "this long before exiting 69 (default 10m)",
    )

    commands.add_parser(
        "refresh",
        parents=[common],
        help="new session from the stored api key (prompts for one if none is stored)",
    )

    p_status = commands.add_parser(
        "status", parents=[common], help="show the state (no secrets, no network)"
    )
    p_status.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p_run = commands.add_parser("run", parents=[common], help="run the heartbeat daemon")
    p_run.add_argument(
        "--heartbeat-interval",
        type=heartbeat_interval,
        metavar="DURATION",
        help="fixed heartbeat interval, >= 1s (default: the interval the gateway asks for)",
    )
    healthcli.add_commands(commands, common)
    return parser


def resolve_state_dir(flag: str | None, environ: Mapping[str, str]) -> Path:
    if flag:
        return Path(flag).expanduser()
    if environ.get("FLEETNODE_STATE_DIR"):
        return Path(environ["FLEETNODE_STATE_DIR"]).expanduser()
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"]) / "fleetnode"
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / "fleetnode"


async def _dispatch(args: argparse.Namespace, store: StateStore, runtime: Runtime) -> int:
    """Run the command: its own exit code (``check``), else EXIT_OK unless it raises."""
    if args.command == "check":
        return healthcli.run_check(args, store, runtime)
    if args.command == "watchdog":
        await healthcli.run_watchdog(args, store, runtime)
    elif args.command == "enroll":
        options = enroll.EnrollOptions(
            server_url=args.server_url,
            name=args.name or socket.gethostname(),
            force=args.force,
            allow_insecure_transport=args.allow_insecure_transport,
            ca_file=args.ca_file,
            code_file=args.code_file,
            enroll_timeout_seconds=args.enroll_timeout,
        )
        await enroll.enroll(store, options, runtime)
    elif args.command == "refresh":
        await refresh.refresh(store, runtime)
    elif args.command == "status":
        status.show_status(store, runtime, as_json=args.json)
    else:
        run_options = daemon.RunOptions(heartbeat_interval_seconds=args.heartbeat_interval)
        await daemon.run(store, run_options, runtime)
    return EXIT_OK


def _report(group: BaseExceptionGroup[BaseException], code: int, codes: list[int]) -> None:
    for exc in _leaves(group):
        logger.error("%s", exc)
    codes.append(code)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found


async def execute(args: argparse.Namespace, store: StateStore, runtime: Runtime) -> int:
    """Run one command; every failure becomes a logged message and an exit code."""
    codes: list[int] = []
    try:
        codes.append(await _dispatch(args, store, runtime))
    except* StateLocked as group:
        _report(group, EXIT_LOCKED, codes)
    except* ConfigurationError as group:
        _report(group, EXIT_CONFIG, codes)
    except* (CredentialsRejected, NodeGone) as group:
        _report(group, EXIT_REJECTED, codes)
    except* GatewayUnavailable as group:
        _report(group, EXIT_UNAVAILABLE, codes)
    except* AgentError as group:
        _report(group, EXIT_FAILURE, codes)
    except* Exception as group:
        for exc in _leaves(group):
            # No traceback for the user (it could quote a secret); details at debug level.
            logger.error(
                "unexpected failure (%s); rerun with --log-level debug", type(exc).__name__
            )
            logger.debug("details of the unexpected failure", exc_info=exc)
        codes.append(EXIT_FAILURE)
    return codes[0] if codes else EXIT_OK


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = build_parser().parse_args(argv)
    healthcli.read_environment(args, os.environ)
    logs.configure(sys.stderr, args.log_format, args.log_level)
    store = StateStore(resolve_state_dir(args.state_dir, os.environ))
    runtime = Runtime(stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr)
    try:
        code = trio.run(execute, args, store, runtime)
    except KeyboardInterrupt:
        code = 130  # Ctrl-C at a prompt of a one-shot command
    sys.exit(code)


if __name__ == "__main__":
    main()
