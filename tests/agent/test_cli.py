"""The command line: usage errors (exit 2), durations, where the state directory is."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.__main__ import build_parser, resolve_state_dir


@pytest.mark.parametrize("value", ["500ms", "0.5", "0", "nan", "-5s", "soon", "5x"])
def test_heartbeat_interval_below_one_second_or_malformed_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--heartbeat-interval under 1 s (or not a duration) exits 2 with a usage message."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["run", "--heartbeat-interval", value])
    assert info.value.code == 2
    assert "--heartbeat-interval" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "seconds"), [("1s", 1.0), ("30s", 30.0), ("1m30s", 90.0), ("45", 45.0)]
)
def test_heartbeat_interval_accepts_durations(value: str, seconds: float) -> None:
    """Durations of 1 s or more are accepted, a bare number meaning seconds."""
    args = build_parser().parse_args(["run", "--heartbeat-interval", value])
    assert args.heartbeat_interval == seconds


def test_global_options_work_before_and_after_the_command() -> None:
    """--state-dir, --log-format and --log-level are accepted on either side of the command."""
    before = build_parser().parse_args(["--state-dir", "/a", "--log-format", "json", "status"])
    after = build_parser().parse_args(["status", "--state-dir", "/a", "--log-level", "debug"])
    assert (before.state_dir, before.log_format, before.log_level) == ("/a", "json", "info")
    assert (after.state_dir, after.log_format, after.log_level) == ("/a", "text", "debug")


def test_log_level_is_one_of_four() -> None:
    """--log-level takes debug, info, warning or error only."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--log-level", "trace", "status"])
    assert info.value.code == 2


def test_enroll_requires_a_server_url() -> None:
    """enroll without --server-url is a usage error."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["enroll"])
    assert info.value.code == 2


def test_state_dir_precedence() -> None:
    """Flag, then FLEETNODE_STATE_DIR, then $XDG_STATE_HOME/fleetnode, then ~/.local/state."""
    env = {"FLEETNODE_STATE_DIR": "/env", "XDG_STATE_HOME": "/xdg", "HOME": "/home/u"}
    assert resolve_state_dir("/flag", env) == Path("/flag")
    assert resolve_state_dir(None, env) == Path("/env")
    del env["FLEETNODE_STATE_DIR"]
    assert resolve_state_dir(None, env) == Path("/xdg/fleetnode")
    del env["XDG_STATE_HOME"]
    assert resolve_state_dir(None, env) == Path("/home/u/.local/state/fleetnode")
