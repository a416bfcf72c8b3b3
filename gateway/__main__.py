"""``fleet-gateway``: serve, init-db, create-org, create-admin-token, dev, demo (SPEC 6).

The only module of the gateway that reads ``os.environ``, configures logging and
starts an event loop. Exit codes (SPEC 5.9): 0 success or signal shutdown, 1
unexpected failure, 2 usage error, 78 a configuration the gateway refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from gateway import devcommands, runtime, server
from gateway.cli_config import Command, build_parser, config_from, require_database_url
from gateway.config import Config, ConfigError
from gateway.errors import DomainError
from gateway.logging_setup import configure_logging
from gateway.principals import Role

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _serve(args: argparse.Namespace, config: Config) -> int:
    await server.serve_until_signalled(config)  # logs "listening on http://HOST:PORT"
    return EXIT_OK


async def _init_db(args: argparse.Namespace, config: Config) -> int:
    await runtime.init_db(config.database_url)
    _stderr("schema applied")
    return EXIT_OK


def _org_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="organization name")


async def _create_org(args: argparse.Namespace, config: Config) -> int:
    print(await runtime.create_org(config.database_url, args.name), flush=True)
    return EXIT_OK


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, metavar="NAME", help="organization name")
    parser.add_argument(
        "--role",
        choices=[role.value for role in Role],
        default=Role.ADMIN.value,
        help="admin (everything) or viewer (list only); default admin",
    )
    parser.add_argument("--label", default="", metavar="TEXT", help="what the token is for")


async def _create_admin_token(args: argparse.Namespace, config: Config) -> int:
    token = await runtime.create_admin_token(
        config.database_url, args.org, Role(args.role), args.label
    )
    print(token, flush=True)  # shown once; stored only as its hash
    return EXIT_OK


# dev/demo live in their own modules: each defines a Command and is listed here.
COMMANDS: tuple[Command, ...] = (
    Command("serve", "serve the node and admin APIs", _serve),
    Command("init-db", "apply schema.sql (idempotent)", _init_db),
    Command(
        "create-org",
        "create an organization (idempotent) and print its id",
        _create_org,
        _org_argument,
    ),
    Command(
        "create-admin-token",
        "create an admin token and print it once",
        _create_admin_token,
        _token_arguments,
    ),
    *devcommands.COMMANDS,
)


def run(argv: Sequence[str], env: Mapping[str, str], commands: Sequence[Command] = COMMANDS) -> int:
    """Parse, configure, run one command; the exit code. Usage errors raise SystemExit(2)."""
    args = build_parser(commands).parse_args(argv)
    command = next(c for c in commands if c.name == args.command)
    try:
        config = config_from(args, env)
        config.check()
        if command.needs_database:
            require_database_url(config)
    except ConfigError as exc:
        _stderr(f"fleet-gateway: {exc}")
        return EXIT_CONFIG
    configure_logging(config.log_format, config.log_level)
    try:
        return asyncio.run(command.run(args, config))
    except ConfigError as exc:
        _stderr(f"fleet-gateway: {exc}")
        return EXIT_CONFIG
    except DomainError as exc:
        _stderr(f"fleet-gateway: {exc.message}")
        return EXIT_FAILURE
    except server.ListenError as exc:
        _stderr(f"fleet-gateway: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except Exception as exc:  # the last boundary: no traceback for users
        logger.debug("unexpected failure", exc_info=True)
        _stderr(
            f"fleet-gateway: unexpected error ({type(exc).__name__}); "
            "run with --log-level debug for details"
        )
        return EXIT_FAILURE


def main() -> None:
    sys.exit(run(sys.argv[1:], os.environ))


if __name__ == "__main__":
    main()
