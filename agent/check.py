"""``fleetnode check [--max-age D]``: is the daemon really working? (SPEC 5.11)

Healthy (exit 0) when a live daemon, its pid holding the state lock, had a heartbeat
acknowledged within ``--max-age`` (default 3 x its heartbeat interval); else unhealthy
(exit 1). Either way one line on stdout says why. Never locks, never touches the network,
never creates or changes a file; ``watchdog`` runs the same check at each tick.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import attrs

from agent.health import Health, age_seconds
from agent.healthfile import HealthUnreadable, daemon_runs, open_state_dir, read_health
from agent.runtime import Runtime

DEFAULT_MAX_AGE_INTERVALS = 3

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1


@attrs.frozen
class Verdict:
    healthy: bool
    reason: str  # one line

    @property
    def exit_code(self) -> int:
        return EXIT_HEALTHY if self.healthy else EXIT_UNHEALTHY


def judge(
    health: Health,
    running: bool,
    now: datetime.datetime,
    max_age_seconds: float | None = None,
) -> Verdict:
    """The verdict on a health.json that could be read; ``running``: its pid is the daemon."""
    limit = (
        max_age_seconds
        if max_age_seconds is not None
        else DEFAULT_MAX_AGE_INTERVALS * health.heartbeat_interval_seconds
    )
    age = health.heartbeat_age_seconds(now)
    last = "no heartbeat acknowledged" if age is None else f"last heartbeat {_ago(age)}"
    if not running:
        return Verdict(
            False,
            f"no daemon running (health.json is from pid {health.pid}, which no longer "
            f"runs; {last})",
        )
    error = f": {health.last_error}" if health.consecutive_failures and health.last_error else ""
    if age is None:
        started = _ago(age_seconds(now, health.started_at))
        return Verdict(
            False,
            f"no heartbeat acknowledged since pid {health.pid} started {started} "
            f"(limit {spell_duration(limit)}){error}",
        )
    if age > limit:
        return Verdict(False, f"{last} (limit {spell_duration(limit)}){error}")
    failing = (
        f"; {health.consecutive_failures} failed since{error}"
        if health.consecutive_failures
        else ""
    )
    return Verdict(True, f"ok: pid {health.pid}, {last} (limit {spell_duration(limit)}){failing}")


def check_health(
    directory: Path, now: datetime.datetime, max_age_seconds: float | None = None
) -> Verdict:
    """Read the state directory's health.json and judge it; never raises for what it finds."""
    try:
        fd = open_state_dir(directory)
    except HealthUnreadable as exc:
        return Verdict(False, f"no daemon running ({exc})")
    try:
        try:
            health = read_health(fd, directory)
        except HealthUnreadable as exc:
            return Verdict(False, str(exc))
        if health is None:
            return Verdict(False, f"no daemon running (no health.json in {directory})")
        return judge(health, daemon_runs(health.pid, fd), now, max_age_seconds)
    finally:
        os.close(fd)


def run_check(directory: Path, runtime: Runtime, max_age_seconds: float | None) -> int:
    """The ``check`` command: print the verdict's line; its exit code."""
    verdict = check_health(directory, runtime.wall_clock(), max_age_seconds)
    runtime.stdout.write(verdict.reason + "\n")
    runtime.stdout.flush()
    return verdict.exit_code


def _ago(seconds: float) -> str:
    return f"{spell_duration(seconds)} ago"


def spell_duration(seconds: float) -> str:
    """A duration as ``--max-age`` accepts it: ``2.5s``, ``15s``, ``1m30s``, ``2h``.

    Tenths below 10 s, so "3.4s ago (limit 3s)" never reads as "3s ago (limit 3s)"."""
    if seconds < 10:
        return f"{seconds:.1f}".removesuffix(".0") + "s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value)
