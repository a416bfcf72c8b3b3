"""The gateway's configuration options as flags and ``FLEET_*`` variables (SPEC 6.1).

Every option is a flag ``--name`` and an environment variable ``FLEET_NAME``; the
flag wins. The environment arrives as a mapping (only ``__main__`` reads
``os.environ``). A bad flag value is a usage error (argparse, exit 2); a bad
environment value is a :class:`ConfigError` (exit 78), as is a missing
``--database-url`` for a command that needs one.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import attrs

from fleetwire.durations import parse_duration
from gateway.config import Config, ConfigError, LogFormat

LOG_LEVELS = ("debug", "info", "warning", "error")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"invalid port {text!r}: use a number from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid port {text!r}: use a number from 0 to 65535")
    return port


def parse_networks(text: str) -> tuple[Network, ...]:
    """A comma-separated CIDR list; a bare address is a /32 (or /128)."""
    networks = []
    for part in text.split(","):
        spelled = part.strip()
        if not spelled:
            continue
        try:
            networks.append(ipaddress.ip_network(spelled, strict=False))
        except ValueError:
            raise ValueError(
                f"invalid network {spelled!r}: use CIDR notation, e.g. 10.0.0.0/8,::1/128"
            ) from None
    return tuple(networks)


def parse_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"invalid rate {text!r}: use a positive number per second") from None
    if not rate > 0 or rate == float("inf"):
        raise ValueError(f"invalid rate {text!r}: use a positive number per second")
    return rate


def parse_burst(text: str) -> int:
    try:
        burst = int(text)
    except ValueError:
        raise ValueError(f"invalid burst {text!r}: use a whole number of at least 1") from None
    if burst < 1:
        raise ValueError(f"invalid burst {text!r}: use a whole number of at least 1")
    return burst


def parse_log_format(text: str) -> LogFormat:
    try:
        return LogFormat(text.strip().lower())
    except ValueError:
        raise ValueError(f"invalid log format {text!r}: use text or json") from None


def parse_log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"invalid log level {text!r}: use {'|'.join(LOG_LEVELS)}")
    return level


def _text(text: str) -> str:
    return text


def parse_switch(text: str) -> bool:
    """An on/off option's environment value (its flag takes no value)."""
    spelled = text.strip().lower()
    if spelled in ("1", "true", "yes", "on"):
        return True
    if spelled in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"invalid switch {text!r}: use true or false")


@attrs.frozen
class Option:
    """One configuration option: its flag, the Config field it sets, and its parser."""

    name: str  # the flag without dashes: "session-ttl"
    field: str  # the Config attribute it sets
    parse: Callable[[str], Any]
    help: str
    switch: bool = False  # a flag without a value (its variable takes true/false)

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def env(self) -> str:
        return "FLEET_" + self.name.upper().replace("-", "_")

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("database-url", "database_url", _text, "PostgreSQL URL (libpq syntax)"),
    Option("host", "host", _text, "address to listen on (default 127.0.0.1)"),
    Option("port", "port", parse_port, "port to listen on, 0 picks a free one (default 8080)"),
    Option(
        "trusted-proxies",
        "trusted_proxies",
        parse_networks,
        "comma-separated CIDRs of reverse proxies whose X-Forwarded-For/Forwarded is honoured",
    ),
    Option("session-ttl", "session_ttl_seconds", parse_duration, "session lifetime (24h)"),
    Option(
        "last-seen-debounce",
        "last_seen_debounce_seconds",
        parse_duration,
        "at most one last_seen write per node per window, 0 disables (60s)",
    ),
    Option(
        "flush-interval",
        "flush_interval_seconds",
        parse_duration,
        "longest wait before heartbeat writes are committed together (20ms)",
    ),
    Option(
        "offline-after",
        "offline_after_seconds",
        parse_duration,
        "a node without a heartbeat for this long is offline (150s)",
    ),
    Option(
        "heartbeat-interval",
        "heartbeat_interval_seconds",
        parse_duration,
        "heartbeat interval the gateway asks nodes for (30s)",
    ),
    Option(
        "auth-rate",
        "auth_rate",
        parse_rate,
        "enrollment/handshake calls per second per client address (5)",
    ),
    Option("auth-burst", "auth_burst", parse_burst, "burst for --auth-rate (20)"),
    Option(
        "node-heartbeat-rate",
        "node_heartbeat_rate",
        parse_rate,
        "heartbeats per second per node, burst twice that (4)",
    ),
    Option(
        "event-retention",
        "event_retention_seconds",
        parse_duration,
        "how long connectivity events are kept (30d)",
    ),
    Option(
        "reuse-port",
        "reuse_port",
        parse_switch,
        "bind with SO_REUSEPORT so several serve processes share one port (each a full replica)",
        switch=True,
    ),
    Option(
        "metrics-port",
        "metrics_port",
        parse_port,
        "also serve this process's /metrics, /healthz and /readyz on this port, 0 picks a"
        " free one (none): with --reuse-port, how Prometheus scrapes each replica",
    ),
    Option("log-format", "log_format", parse_log_format, "text or json (text)"),
    Option("log-level", "log_level", parse_log_level, "debug|info|warning|error (info)"),
)


def _argparse_type(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as exc:
            # argparse shows an ArgumentTypeError's text as the usage error.
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option.name
    return convert


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every option as a flag. Absent flags set nothing (SUPPRESS), so the
    environment and the defaults can fill them in later."""
    group = parser.add_argument_group("configuration (each also FLEET_<OPTION>)")
    for option in OPTIONS:
        if option.switch:
            group.add_argument(
                option.flag,
                dest=option.dest,
                action="store_true",
                default=argparse.SUPPRESS,
                help=option.help,
            )
            continue
        group.add_argument(
            option.flag,
            dest=option.dest,
            type=_argparse_type(option),
            default=argparse.SUPPRESS,
            metavar=option.name.split("-")[-1].upper(),
            help=option.help,
        )


def config_from(
    args: argparse.Namespace, env: Mapping[str, str], *, base: Config | None = None
) -> Config:
    """The Config: flags first, then ``FLEET_*`` variables, then ``base`` (defaults)."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.dest in vars(args):
            values[option.field] = getattr(args, option.dest)
        elif env.get(option.env, "").strip():
            try:
                values[option.field] = option.parse(env[option.env])
            except ValueError as exc:
                raise ConfigError(f"{option.env}: {exc}") from None
    return attrs.evolve(base or Config(), **values)


def require_database_url(config: Config) -> None:
    if not config.database_url:
        raise ConfigError("no database: give --database-url or set FLEET_DATABASE_URL")


@attrs.frozen
class Invocation:
    """What a command runs with: its arguments, the configuration, and the environment
    (read by ``__main__`` alone and handed in, e.g. for the demo's child processes)."""

    args: argparse.Namespace
    config: Config
    env: Mapping[str, str]


@attrs.frozen
class Command:
    """A ``fleet-gateway`` subcommand. ``run`` is awaited on the loop ``__main__``
    starts; it returns the exit code. The production commands (``gateway.commands``)
    and the development ones (``gateway.dev.commands``) each define theirs."""

    name: str
    help: str
    run: Callable[[Invocation], Coroutine[Any, Any, int]]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None
    needs_database: bool = True


def build_parser(
    commands: Sequence[Command], prog: str = "fleet-gateway"
) -> argparse.ArgumentParser:
    """The parser: configuration flags are accepted before or after the command."""
    parser = argparse.ArgumentParser(prog=prog, description="The fleetnode gateway.")
    add_config_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        add_config_arguments(child)
        command.add_arguments(child)
    return parser
