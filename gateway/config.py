"""The gateway's configuration: one frozen value, built from flags and FLEET_* variables.

Parsing lives in ``gateway.cli_config`` (flags + environment); this module only
holds the value and the rules that make a configuration unacceptable.
"""

from __future__ import annotations

import enum
import ipaddress

import attrs


class LogFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


class ConfigError(ValueError):
    """A configuration the gateway refuses (exit 78); the message says what to change."""


@attrs.frozen
class Config:
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    reuse_port: bool = False
    metrics_port: int | None = None  # this process's own monitoring port (0: any free one)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    session_ttl_seconds: float = 24 * 3600.0
    last_seen_debounce_seconds: float = 60.0
    flush_interval_seconds: float = 0.020
    flush_max_rows: int = 1000
    offline_after_seconds: float = 150.0
    heartbeat_interval_seconds: float = 30.0
    auth_rate: float = 5.0
    auth_burst: int = 20
    node_heartbeat_rate: float = 4.0
    challenge_ttl_seconds: float = 30.0
    sweep_interval_seconds: float = 300.0
    event_retention_seconds: float = 30 * 86400.0
    offline_scan_interval_seconds: float = 5.0  # OFFLINE recorded within 30 s (SPEC 4.9)
    gauge_refresh_interval_seconds: float = 15.0  # fleet_nodes (SPEC 2.3)
    session_cache_size: int = 200_000
    db_pool_size: int = 10
    db_timeout_seconds: float = 5.0
    # gateway.heap: freeze the long-lived heap, collect young objects in larger batches.
    # Process-wide; off only where something inspects the collector (gc.get_referrers
    # cannot see a frozen heap).
    gc_freeze: bool = True
    log_format: LogFormat = LogFormat.TEXT
    log_level: str = "info"

    @property
    def node_heartbeat_burst(self) -> int:
        """Per-node burst: twice the rate (SPEC 4.8)."""
        return max(1, int(2 * self.node_heartbeat_rate))

    def check(self) -> None:
        """Refuse a configuration that would make nodes flap (SPEC 4.5)."""
        floor = self.last_seen_debounce_seconds + 2 * self.heartbeat_interval_seconds
        if self.offline_after_seconds < floor:
            raise ConfigError(
                f"--offline-after ({self.offline_after_seconds:g}s) must be at least "
                f"--last-seen-debounce + 2 x --heartbeat-interval ({floor:g}s), "
                "or nodes would flap between online and offline"
            )
        if self.heartbeat_interval_seconds < 5:
            raise ConfigError("--heartbeat-interval must be at least 5s")
        if self.flush_interval_seconds <= 0:
            raise ConfigError("--flush-interval must be positive")
        if self.event_retention_seconds <= 0:
            raise ConfigError("--event-retention must be positive, e.g. 30d")
