"""``fleetnode status [--json]``: what the state holds, never a secret (SPEC 5.6), and,
when the daemon left a ``health.json``, how it is doing.

Read-only: no lock, no network, creates and tightens nothing.
"""

from __future__ import annotations

import datetime
import json
import logging

import attrs

from agent.health import Health
from agent.healthfile import HealthUnreadable, daemon_runs, read_health
from agent.runtime import Runtime
from agent.state import State
from agent.statedir import StateDir, StateStore
from fleetwire.durations import format_duration
from fleetwire.scalars import format_timestamp

logger = logging.getLogger(__name__)


def status_fields(store: StateStore, state: State) -> dict[str, object]:
    """The public view of the state: every key of ``status --json``."""
    expires = state.session_expires_at
    return {
        "state_path": str(store.state_path),
        "server_url": state.server_url,
        "fleet_node_id": state.fleet_node_id,
        "name": state.name,
        "identity_fingerprint": state.identity_fingerprint,
        "api_key_present": bool(state.api_key),
        "session_present": state.session is not None,
        "session_expires_at": None if expires is None else format_timestamp(expires),
    }


@attrs.frozen
class DaemonReport:
    """The daemon as its health.json tells it, or why that cannot be trusted."""

    health: Health | None = None
    running: bool = False
    problem: str | None = None

    def fields(self, now: datetime.datetime) -> dict[str, object]:
        """``daemon`` in ``status --json``: ``problem`` alone when health.json is not trusted."""
        if self.health is None:
            return {"problem": self.problem}
        health = self.health
        age = health.heartbeat_age_seconds(now)
        return {
            "pid": health.pid,
            "running": self.running,
            "started_at": format_timestamp(health.started_at),
            "last_heartbeat_at": _timestamp(health.last_heartbeat_at),
            "last_heartbeat_age_seconds": None if age is None else round(age, 3),
            "last_attempt_at": _timestamp(health.last_attempt_at),
            "consecutive_failures": health.consecutive_failures,
            "last_error": health.last_error,
            "heartbeat_interval_seconds": health.heartbeat_interval_seconds,
        }

    def lines(self, now: datetime.datetime) -> list[str]:
        if self.health is None:
            return [f"daemon: {self.problem}"]
        health = self.health
        age = health.heartbeat_age_seconds(now)
        last = "never" if age is None else f"{format_duration(age)} ago"
        if health.last_heartbeat_at is not None:
            last += f" ({format_timestamp(health.last_heartbeat_at)})"
        return [
            f"daemon_pid: {health.pid} ({'running' if self.running else 'not running'})",
            f"last_heartbeat: {last}",
            f"consecutive_failures: {health.consecutive_failures}",
            f"last_error: {health.last_error or '-'}",
        ]


def read_daemon_report(directory: StateDir) -> DaemonReport | None:
    """None when no daemon left a health.json here."""
    try:
        health = read_health(directory.fileno(), directory.path)
    except HealthUnreadable as exc:
        return DaemonReport(problem=str(exc))
    if health is None:
        return None
    return DaemonReport(health, daemon_runs(health.pid, directory.fileno()))


def _timestamp(value: datetime.datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def show_status(store: StateStore, runtime: Runtime, *, as_json: bool) -> None:
    with store.open() as directory:
        state = directory.load_enrolled()
        for loose in directory.loose_read_permissions():
            # Reported, not changed: status is read-only (enroll, refresh, run tighten it).
            logger.warning("%s; `fleetnode refresh` or `run` makes it private", loose)
        daemon = read_daemon_report(directory)
    now = runtime.wall_clock()
    fields = status_fields(store, state)
    if as_json:
        if daemon is not None:
            fields["daemon"] = daemon.fields(now)
        runtime.stdout.write(json.dumps(fields, indent=2) + "\n")
    else:
        expires = state.session_expires_at
        for key, value in fields.items():
            if isinstance(value, bool):
                text = "yes" if value else "no"
            elif value is None:
                text = "-"
            else:
                text = str(value)
            if key == "session_expires_at" and expires is not None:
                left = (expires - runtime.wall_clock()).total_seconds()
                text += f" ({format_duration(left)} left)" if left > 0 else " (expired)"
            runtime.stdout.write(f"{key}: {text}\n")
        for line in [] if daemon is None else daemon.lines(now):
            runtime.stdout.write(line + "\n")
    runtime.stdout.flush()
