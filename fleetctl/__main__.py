"""fleetctl: the operator's command line over the gateway's admin API (SPEC 7).

The only module of fleetctl that reads the environment (FLEET_SERVER_URL,
FLEET_ADMIN_TOKEN) and parses arguments; each command lives in its family's module. The
admin token is never a flag: flags end up in shell history and process listings.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

import httpx

from fleetctl.client import AdminClient, open_http
from fleetctl.codes import Codes, CreateCode, RevokeCode
from fleetctl.context import Clock, Command, Context
from fleetctl.errors import (
    EXIT_OK,
    EXIT_USAGE,
    ConfigurationError,
    CtlError,
    Unreachable,
    describe,
    exit_code_for,
)
from fleetctl.events import LINE_FORMAT, Events
from fleetctl.nodes import Confirm, Nodes, Revoke, Summary
from fleetctl.urlrule import check_server_url
from fleetwire import messages as m
from fleetwire.codes import ConnectError
from fleetwire.durations import parse_duration
from fleetwire.validators import INT64_MAX

DEFAULT_SERVER_URL = "http://127.0.0.1:8080"

_CONNECTIVITY = {
    "online": m.Connectivity.CONNECTIVITY_ONLINE,
    "offline": m.Connectivity.CONNECTIVITY_OFFLINE,
    "never-seen": m.Connectivity.CONNECTIVITY_NEVER_SEEN,
    "stopped": m.Connectivity.CONNECTIVITY_STOPPED,
}

_EPILOG = """\
exit codes: 0 success; 1 other failure (e.g. not_found, failed_precondition);
2 usage error or invalid_argument; 69 gateway unreachable, unavailable or rate limiting;
77 admin token rejected or lacking the role; 78 configuration (no FLEET_ADMIN_TOKEN,
server URL breaking the rule, unreadable --ca-file).
Plain http is allowed only to localhost, 127.0.0.0/8 and ::1 unless
--allow-insecure-transport is given before the command."""

_EVENTS_HELP = f"""\
Print fleet node events, oldest first, one line each:
  {LINE_FORMAT}
e.g. 2026-11-27T10:04:31Z  1207 node=42 OFFLINE
With --json, one JSON object per line (the event as the API writes it).
--follow polls every 2 s until Ctrl-C; while following, an unreachable or
unavailable gateway is reported on stderr and polled again."""


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


_ID = _integer(1, INT64_MAX)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetctl",
        description="Operate a fleet through the gateway's admin API. "
        "The admin token is read from FLEET_ADMIN_TOKEN.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server-url", help=f"gateway URL (env FLEET_SERVER_URL, default {DEFAULT_SERVER_URL})"
    )
    parser.add_argument("--ca-file", help="PEM bundle of the CA that signed the gateway's cert")
    parser.add_argument(
        "--allow-insecure-transport",
        action="store_true",
        help="allow plain http to a host that is not loopback (the admin token then crosses "
        "the network in clear; not for production)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = commands.add_parser("create-code", help="mint an enrollment code (printed once)")
    create.add_argument(
        "--ttl", type=_duration, default="1h", help="validity, 1m..24h, pre-approved up to 30d"
    )
    create.add_argument(
        "--pre-approve", action="store_true", help="the code confirms the nodes it registers"
    )
    create.add_argument(
        "--uses", type=_integer(1, m.MAX_CODE_USES), help="nodes a pre-approved code may register"
    )
    codes = commands.add_parser("codes", help="list open enrollment codes, newest first")
    codes.add_argument("--all", action="store_true", help="include used up, expired, revoked")
    codes.add_argument("--json", action="store_true", help="print JSON instead of a table")
    revoke_code = commands.add_parser("revoke-code", help="revoke an enrollment code")
    revoke_code.add_argument("pending_enrollment_id", type=_ID, metavar="ID")

    nodes = commands.add_parser("nodes", help="list the fleet, newest first")
    nodes.add_argument("--json", action="store_true", help="print JSON instead of a table")
    nodes.add_argument("--wide", action="store_true", help="add agent version, hostname, os")
    nodes.add_argument("--connectivity", choices=list(_CONNECTIVITY), help="only these nodes")
    confirm = commands.add_parser("confirm", help="confirm a node and print its api key once")
    confirm.add_argument("fleet_node_id", type=_ID, metavar="ID")
    revoke = commands.add_parser("revoke", help="revoke a node; its agent exits at once")
    revoke.add_argument("fleet_node_id", type=_ID, metavar="ID")
    summary = commands.add_parser("summary", help="counts by connectivity, recent offline nodes")
    summary.add_argument("--json", action="store_true", help="print JSON instead of text")

    events = commands.add_parser(
        "events",
        help="fleet node events, oldest first",
        description=_EVENTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    events.add_argument("--node", type=_ID, metavar="ID", help="only this node's events")
    events.add_argument(
        "--after",
        type=_integer(0, INT64_MAX),
        default=0,
        metavar="EVENT_ID",
        help="start after this event id (default: the oldest kept)",
    )
    events.add_argument("--follow", action="store_true", help="keep polling until Ctrl-C")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _command(args: argparse.Namespace) -> Command:
    match args.command:
        case "create-code":
            return CreateCode.from_flags(args.ttl, args.pre_approve, args.uses)
        case "codes":
            return Codes(include_closed=args.all, json=args.json)
        case "revoke-code":
            return RevokeCode(args.pending_enrollment_id)
        case "nodes":
            connectivity = _CONNECTIVITY.get(
                args.connectivity, m.Connectivity.CONNECTIVITY_UNSPECIFIED
            )
            return Nodes(connectivity=connectivity, json=args.json, wide=args.wide)
        case "confirm":
            return Confirm(args.fleet_node_id)
        case "revoke":
            return Revoke(args.fleet_node_id)
        case "summary":
            return Summary(json=args.json)
        case "events":
            return Events(args.node or 0, args.after, follow=args.follow, json=args.json)
    raise AssertionError(f"unknown command {args.command}")  # argparse allows no other


def run(
    argv: Sequence[str],
    environ: Mapping[str, str],
    transport: httpx.BaseTransport | None = None,
    clock: Clock | None = None,
) -> int:
    """Run one command; ``transport`` and ``clock`` are the test seams (None: the real
    network, the real clock)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        command = _command(args)
        # Before anything connects: the admin token must not cross a network in clear.
        server_url = check_server_url(
            args.server_url or environ.get("FLEET_SERVER_URL") or DEFAULT_SERVER_URL,
            allow_insecure_transport=args.allow_insecure_transport,
        )
        token = environ.get("FLEET_ADMIN_TOKEN", "").strip()
        if not token:
            raise ConfigurationError(
                "no admin token: export FLEET_ADMIN_TOKEN (from fleet-gateway create-admin-token)"
            )
        with open_http(args.ca_file, transport) as http:
            command.run(Context(AdminClient(http, server_url, token), clock or Clock()))
    except (CtlError, ConnectError, Unreachable) as exc:
        print(f"fleetctl: {describe(exc)}", file=sys.stderr)
        return exit_code_for(exc)
    return EXIT_OK


def main() -> NoReturn:
    try:
        sys.exit(run(sys.argv[1:], os.environ))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
