"""The check's rule on a health.json it could read (SPEC 5.11): thresholds and wording."""

from __future__ import annotations

import datetime

import pytest

from agent.check import judge, spell_duration
from agent.health import Health

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def health(**changes: object) -> Health:
    values: dict[str, object] = {
        "pid": 4242,
        "started_at": ago(3600),
        "heartbeat_interval_seconds": 30.0,
        "last_heartbeat_at": ago(10),
        "last_attempt_at": ago(10),
    }
    values.update(changes)
    return Health(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("age", "healthy"), [(0.0, True), (89.9, True), (90.0, True), (90.1, False), (600.0, False)]
)
def test_default_limit_is_three_intervals(age: float, healthy: bool) -> None:
    """Healthy while the last acknowledged heartbeat is at most 3 x the interval old."""
    verdict = judge(health(last_heartbeat_at=ago(age), last_attempt_at=ago(age)), True, NOW)
    assert verdict.healthy is healthy
    assert verdict.exit_code == (0 if healthy else 1)
    assert "(limit 1m30s)" in verdict.reason


def test_the_spec_s_example_line() -> None:
    """A stale heartbeat with failures since reads as SPEC 5.11's example."""
    verdict = judge(
        health(
            last_heartbeat_at=ago(240),
            last_attempt_at=ago(20),
            consecutive_failures=7,
            last_error="connection refused",
        ),
        True,
        NOW,
    )
    assert verdict.reason == "last heartbeat 4m ago (limit 1m30s): connection refused"
    assert not verdict.healthy


def test_max_age_overrides_the_default() -> None:
    """--max-age replaces 3 x interval, in both directions."""
    two_minutes = health(last_heartbeat_at=ago(120), last_attempt_at=ago(120))
    assert judge(two_minutes, True, NOW, max_age_seconds=150).healthy
    assert not judge(two_minutes, True, NOW, max_age_seconds=60).healthy
    assert judge(health(), True, NOW, max_age_seconds=5).reason == (
        "last heartbeat 10s ago (limit 5s)"
    )


def test_interval_sets_the_default_limit() -> None:
    """A daemon heartbeating every 5 s is stale after 15 s."""
    fast = health(heartbeat_interval_seconds=5.0)
    assert judge(fast, True, NOW).healthy
    stale = health(
        heartbeat_interval_seconds=5.0, last_heartbeat_at=ago(20), last_attempt_at=ago(20)
    )
    assert judge(stale, True, NOW).reason == "last heartbeat 20s ago (limit 15s)"


def test_after_failures_the_gateway_s_time_of_the_last_acknowledgement_counts() -> None:
    """With failures since, the acknowledged heartbeat's age comes from last_heartbeat_at,
    not from the (recent) failed attempt."""
    failing = health(last_heartbeat_at=ago(100), last_attempt_at=ago(1), consecutive_failures=2)
    assert not judge(failing, True, NOW).healthy


def test_a_gateway_clock_ahead_counts_as_just_now() -> None:
    """A receivedAt in our future (the gateway's clock ahead) is an age of 0, not negative."""
    ahead = health(last_heartbeat_at=NOW + datetime.timedelta(minutes=5), consecutive_failures=1)
    assert judge(ahead, True, NOW).reason.startswith("ok: pid 4242, last heartbeat 0s ago")


def test_not_running_is_unhealthy_whatever_the_heartbeat() -> None:
    """A fresh heartbeat from a pid that is not the daemon is no daemon."""
    verdict = judge(health(), False, NOW)
    assert not verdict.healthy
    assert verdict.reason == (
        "no daemon running (health.json is from pid 4242, which no longer runs; "
        "last heartbeat 10s ago)"
    )


def test_healthy_but_failing_says_so() -> None:
    """Within the limit with failures since, check passes and says how many failed."""
    verdict = judge(
        health(
            last_heartbeat_at=ago(40),
            last_attempt_at=ago(5),
            consecutive_failures=1,
            last_error="UploadHeartbeat: unavailable",
        ),
        True,
        NOW,
    )
    assert verdict.healthy
    assert verdict.reason == (
        "ok: pid 4242, last heartbeat 40s ago (limit 1m30s); 1 failed since: "
        "UploadHeartbeat: unavailable"
    )


@pytest.mark.parametrize(
    ("seconds", "spelled"),
    [(0.5, "0.5s"), (3.44, "3.4s"), (5, "5s"), (90, "1m30s"), (240, "4m"), (5400, "1h30m")],
)
def test_durations_are_spelled_as_max_age_accepts_them(seconds: float, spelled: str) -> None:
    """Limits and ages read like the durations the flags take."""
    assert spell_duration(seconds) == spelled
