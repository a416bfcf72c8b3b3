"""Gateway configuration from flags and FLEET_* variables (SPEC 6.1), and its exit codes."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.__main__ import COMMANDS, run
from gateway.cli_config import build_parser, config_from
from gateway.config import Config, ConfigError, LogFormat


def parse(argv: list[str], env: dict[str, str] | None = None) -> Config:
    return config_from(build_parser(COMMANDS).parse_args(argv), env or {})


def test_defaults_are_the_specs() -> None:
    """With no flags and no environment the defaults of SPEC 6.1 apply."""
    config = parse(["serve"])
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    assert config.session_ttl_seconds == 24 * 3600
    assert config.last_seen_debounce_seconds == 60
    assert config.flush_interval_seconds == pytest.approx(0.020)
    assert config.offline_after_seconds == 150
    assert config.heartbeat_interval_seconds == 30
    assert (config.auth_rate, config.auth_burst, config.node_heartbeat_rate) == (5, 20, 4)
    assert config.trusted_proxies == ()


def test_durations_in_every_spelling() -> None:
    """Durations accept 500ms, 30s, 5m, 24h, 1h30m and a bare 0, from flags and environment."""
    config = parse(
        ["serve", "--flush-interval", "500ms", "--session-ttl", "1h30m", "--offline-after", "5m"],
        {"FLEET_LAST_SEEN_DEBOUNCE": "0", "FLEET_HEARTBEAT_INTERVAL": "30s"},
    )
    assert config.flush_interval_seconds == pytest.approx(0.5)
    assert config.session_ttl_seconds == 5400
    assert config.offline_after_seconds == 300
    assert config.last_seen_debounce_seconds == 0
    assert parse(["serve", "--session-ttl", "24h"]).session_ttl_seconds == 86400


def test_flag_beats_environment() -> None:
    """A flag wins over its FLEET_ variable; the variable wins over the default."""
    env = {"FLEET_PORT": "9000", "FLEET_HOST": "::1", "FLEET_AUTH_RATE": "2.5"}
    config = parse(["serve", "--port", "9100"], env)
    assert config.port == 9100
    assert config.host == "::1"
    assert config.auth_rate == 2.5


def test_flags_before_or_after_the_command() -> None:
    """Configuration flags work on either side of the command name."""
    assert parse(["--port", "1234", "serve"]).port == 1234
    assert parse(["serve", "--port", "1234"]).port == 1234


def test_every_option_has_a_variable() -> None:
    """Each option of SPEC 6.1 can come from FLEET_<OPTION>."""
    env = {
        "FLEET_DATABASE_URL": "postgresql:///x",
        "FLEET_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        "FLEET_AUTH_BURST": "7",
        "FLEET_NODE_HEARTBEAT_RATE": "2",
        "FLEET_LOG_FORMAT": "json",
        "FLEET_LOG_LEVEL": "DEBUG",
    }
    config = parse(["serve"], env)
    assert config.database_url == "postgresql:///x"
    assert config.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert config.auth_burst == 7
    assert config.node_heartbeat_rate == 2
    assert config.node_heartbeat_burst == 4
    assert config.log_format is LogFormat.JSON
    assert config.log_level == "debug"


def test_bad_environment_value_names_the_variable() -> None:
    """A malformed FLEET_ value is a configuration error naming the variable and the forms."""
    with pytest.raises(ConfigError, match="FLEET_SESSION_TTL.*30s"):
        parse(["serve"], {"FLEET_SESSION_TTL": "soon"})
    with pytest.raises(ConfigError, match="FLEET_TRUSTED_PROXIES.*CIDR"):
        parse(["serve"], {"FLEET_TRUSTED_PROXIES": "10.0.0.0/33"})


def test_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed flag exits 2 with argparse's usage message."""
    with pytest.raises(SystemExit) as exc:
        run(["serve", "--heartbeat-interval", "fast"], {})
    assert exc.value.code == 2
    assert "invalid duration 'fast'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run(["serve", "--port", "70000"], {})
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        run([], {})
    assert exc.value.code == 2


def test_offline_after_too_small_exits_78(capsys: pytest.CaptureFixture[str]) -> None:
    """offline-after below debounce + 2 x interval is refused at start with exit 78."""
    code = run(["serve", "--database-url", "postgresql:///x", "--offline-after", "100s"], {})
    assert code == 78
    err = capsys.readouterr().err
    assert "--offline-after" in err
    assert "flap" in err
    assert "Traceback" not in err


def test_missing_database_url_exits_78(capsys: pytest.CaptureFixture[str]) -> None:
    """A command that needs the database says how to name it and exits 78."""
    assert run(["init-db"], {}) == 78
    assert "--database-url" in capsys.readouterr().err


def test_environment_config_error_exits_78(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad variable exits 78 (configuration), not 2 (usage)."""
    assert run(["serve"], {"FLEET_DATABASE_URL": "x", "FLEET_PORT": "http"}) == 78
    assert "FLEET_PORT" in capsys.readouterr().err


def test_unknown_option_is_rejected() -> None:
    """A typo in a flag is a usage error, not silently ignored."""
    with pytest.raises(SystemExit) as exc:
        build_parser(COMMANDS).parse_args(["serve", "--ofline-after", "5m"])
    assert exc.value.code == 2


def test_event_retention_defaults_to_30_days_and_must_be_positive() -> None:
    """--event-retention (FLEET_EVENT_RETENTION) keeps events 30 days unless told; 0 is refused."""
    assert parse(["serve"]).event_retention_seconds == 30 * 86400
    assert parse(["serve", "--event-retention", "7d"]).event_retention_seconds == 7 * 86400
    assert parse(["serve"], {"FLEET_EVENT_RETENTION": "36h"}).event_retention_seconds == 36 * 3600
    with pytest.raises(ConfigError, match="--event-retention"):
        parse(["serve", "--event-retention", "0"]).check()
