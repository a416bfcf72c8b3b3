"""``fleet-gateway``: the commands of ``gateway.commands`` (serve, init-db, the organizations
and admin tokens) and of ``gateway.dev.commands`` (dev, demo) (SPEC 6).

The only module of the gateway that reads ``os.environ``, configures logging and
starts an event loop. Exit codes (SPEC 5.9): 0 success or signal shutdown, 1
unexpected failure, 2 usage error, 78 a configuration the gateway refuses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from gateway import commands, server
from gateway.cli_config import Command, Invocation, build_parser, config_from, require_database_url
from gateway.commands import say
from gateway.config import ConfigError
from gateway.dev import commands as dev_commands
from gateway.errors import DomainError
from gateway.logging_setup import configure_logging

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78

COMMANDS: tuple[Command, ...] = (*commands.COMMANDS, *dev_commands.COMMANDS)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (the optional ``speed`` extra: ~10 % less CPU per
    heartbeat with 1,000 connections, bench/README.md), else asyncio's own (None)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(
    argv: Sequence[str], env: Mapping[str, str], available: Sequence[Command] = COMMANDS
) -> int:
    """Parse, configure, run one command; the exit code. Usage errors raise SystemExit(2)."""
    args = build_parser(available).parse_args(argv)
    command = next(c for c in available if c.name == args.command)
    try:
        config = config_from(args, env)
        config.check()
        if command.needs_database:
            require_database_url(config)
    except ConfigError as exc:
        say(f"fleet-gateway: {exc}")
        return EXIT_CONFIG
    configure_logging(config.log_format, config.log_level)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(command.run(Invocation(args, config, env)))
    except ConfigError as exc:
        say(f"fleet-gateway: {exc}")
        return EXIT_CONFIG
    except DomainError as exc:
        say(f"fleet-gateway: {exc.message}")
        return EXIT_FAILURE
    except server.ListenError as exc:
        say(f"fleet-gateway: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except Exception as exc:  # the last boundary: no traceback for users
        logger.debug("unexpected failure", exc_info=True)
        say(
            f"fleet-gateway: unexpected error ({type(exc).__name__}); "
            "run with --log-level debug for details"
        )
        return EXIT_FAILURE


def main() -> None:
    sys.exit(run(sys.argv[1:], os.environ))


if __name__ == "__main__":
    main()
