"""fleetctl: mint enrollment codes, list, confirm and revoke fleet nodes.

The only module of fleetctl that reads the environment (FLEET_SERVER_URL,
FLEET_ADMIN_TOKEN). The admin token is never a flag: flags end up in shell
history and process listings.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import ssl
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

import httpx

from fleetctl.client import REQUEST_TIMEOUT_SECONDS, AdminClient
from fleetctl.errors import (
    EXIT_OK,
    EXIT_USAGE,
    ConfigurationError,
    CtlError,
    Unreachable,
    UsageError,
    describe,
    exit_code_for,
)
from fleetctl.table import render
from fleetctl.urlrule import check_server_url
from fleetwire import codec
from fleetwire import messages as m
from fleetwire import procedures as p
from fleetwire.codes import ConnectError
from fleetwire.durations import parse_duration

DEFAULT_SERVER_URL = "http://127.0.0.1:8080"

_CONNECTIVITY = {
    "online": m.Connectivity.CONNECTIVITY_ONLINE,
    "offline": m.Connectivity.CONNECTIVITY_OFFLINE,
    "never-seen": m.Connectivity.CONNECTIVITY_NEVER_SEEN,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetctl",
        description="Operate a fleet through the gateway's admin API. "
        "The admin token is read from FLEET_ADMIN_TOKEN.",
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
    create = commands.add_parser("create-code", help="mint a one-time enrollment code")
    create.add_argument("--ttl", default="1h", help="validity, 1m..24h (default 1h)")
    nodes = commands.add_parser("nodes", help="list the fleet, newest first")
    nodes.add_argument("--json", action="store_true", help="print JSON instead of a table")
    nodes.add_argument("--connectivity", choices=sorted(_CONNECTIVITY), help="only these nodes")
    confirm = commands.add_parser("confirm", help="confirm a node and print its api key once")
    confirm.add_argument("fleet_node_id", type=int, metavar="ID")
    revoke = commands.add_parser("revoke", help="revoke a node; its agent exits at once")
    revoke.add_argument("fleet_node_id", type=int, metavar="ID")
    return parser


def _create_code(client: AdminClient, args: argparse.Namespace) -> None:
    try:
        ttl = parse_duration(args.ttl)
    except ValueError as exc:
        raise UsageError(f"--ttl: {exc}") from exc
    response = client.call(
        p.CREATE_ENROLLMENT_CODE, m.CreateEnrollmentCodeRequest(ttl_seconds=m.Int32(int(ttl)))
    )
    expires = codec.to_dict(response).get("expiresAt", "?")
    print(
        f"enrollment code for pending enrollment {response.pending_enrollment_id}, "
        f"valid until {expires}, shown once:",
        file=sys.stderr,
    )
    print(response.code)


def _nodes(client: AdminClient, args: argparse.Namespace) -> None:
    connectivity = _CONNECTIVITY.get(args.connectivity, m.Connectivity.CONNECTIVITY_UNSPECIFIED)
    found: list[m.FleetNodeSummary] = []
    token = ""
    while True:
        page = client.call(
            p.LIST_FLEET_NODES,
            m.ListFleetNodesRequest(
                page_size=m.Int32(m.MAX_PAGE_SIZE), page_token=token, connectivity=connectivity
            ),
        )
        found.extend(page.fleet_nodes)
        token = page.next_page_token
        if not token:
            break
    if args.json:
        print(
            json.dumps(codec.to_dict(m.ListFleetNodesResponse(fleet_nodes=tuple(found))), indent=2)
        )
    else:
        print(render(found, datetime.datetime.now(datetime.UTC)))


def _confirm(client: AdminClient, args: argparse.Namespace) -> None:
    response = client.call(
        p.CONFIRM_FLEET_NODE, m.ConfirmFleetNodeRequest(fleet_node_id=m.Int64(args.fleet_node_id))
    )
    print(
        f"fleet node {args.fleet_node_id} confirmed; its api key, shown once "
        "(paste it at the agent's prompt):",
        file=sys.stderr,
    )
    print(response.api_key)


def _revoke(client: AdminClient, args: argparse.Namespace) -> None:
    client.call(
        p.REVOKE_FLEET_NODE, m.RevokeFleetNodeRequest(fleet_node_id=m.Int64(args.fleet_node_id))
    )
    print(f"revoked fleet_node_id={args.fleet_node_id}")


_COMMANDS = {"create-code": _create_code, "nodes": _nodes, "confirm": _confirm, "revoke": _revoke}


def run(
    argv: Sequence[str],
    environ: Mapping[str, str],
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Run one command; ``transport`` is the test seam (None: the network)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    token = environ.get("FLEET_ADMIN_TOKEN", "").strip()
    try:
        # Before anything connects: the admin token must not cross a network in clear.
        server_url = check_server_url(
            args.server_url or environ.get("FLEET_SERVER_URL") or DEFAULT_SERVER_URL,
            allow_insecure_transport=args.allow_insecure_transport,
        )
        if not token:
            raise ConfigurationError(
                "no admin token: export FLEET_ADMIN_TOKEN (from fleet-gateway create-admin-token)"
            )
        try:
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=args.ca_file) if args.ca_file else True
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"--ca-file {args.ca_file}: cannot load it ({exc})") from exc
        # trust_env=False: connection settings never come from the environment (SPEC 5.8).
        # A proxy from HTTP(S)_PROXY/ALL_PROXY would see the admin token, SSL_CERT_FILE or
        # SSL_CERT_DIR would silently replace the trust store, and .netrc is not ours to use.
        with httpx.Client(
            verify=verify,
            timeout=REQUEST_TIMEOUT_SECONDS,
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        ) as http:
            _COMMANDS[args.command](AdminClient(http, server_url, token), args)
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
