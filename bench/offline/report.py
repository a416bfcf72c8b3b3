"""The offline benchmark's report: a JSON document and the table printed at the end."""

from __future__ import annotations

import math
from typing import Any

from bench.heartbeats import gateway_proc as gp
from bench.heartbeats.report import cpu_per_request_us, phase_summary
from bench.offline.run import Measured, Settings, Steady, lags

DETECTION_LIMIT_SECONDS = 30.0  # SPEC 4.9
MAX_UPDATES_PER_HEARTBEAT = 0.05


def _per(value: float, count: float, digits: int = 5) -> float | None:
    return round(value / count, digits) if count else None


def steady_summary(steady: Steady) -> dict[str, Any]:
    phase, m0, m1 = steady.phase, steady.metrics_before, steady.metrics_after
    beats = phase.ok
    statements = steady.pg_after.write_statements - steady.pg_before.write_statements
    statement_ms = steady.pg_after.write_statement_ms - steady.pg_before.write_statement_ms
    scans = steady.scans
    return {
        **phase_summary(phase),
        "cpu_percent": steady.cpu,
        "cpu_us_per_heartbeat": cpu_per_request_us(steady.cpu, phase),
        "update_statements": statements,
        "update_statements_per_heartbeat": _per(statements, beats),
        "update_statement_mean_ms": round(statement_ms / statements, 3) if statements else None,
        "update_statement_db_us_per_heartbeat": _per(1000 * statement_ms, beats, 2),
        "rows_written_per_heartbeat": _per(
            gp.delta(m1, m0, "fleet_gateway_last_seen_rows_written_total"), beats
        ),
        "heartbeats_debounced": round(gp.delta(m1, m0, "fleet_gateway_heartbeats_debounced_total")),
        "offline_scan": {
            "statements": scans.scan_calls,
            "lock_statements": scans.lock_calls,
            "mean_ms": round(scans.scan_ms / scans.scan_calls, 3) if scans.scan_calls else None,
            "db_us_per_heartbeat": _per(1000 * scans.scan_ms, beats, 2),
        },
        "gauge_refresh": {
            "queries": scans.gauge_calls,
            "mean_ms": round(scans.gauge_ms / scans.gauge_calls, 3) if scans.gauge_calls else None,
        },
    }


def drop_summary(measured: Measured) -> dict[str, Any] | None:
    drop = measured.drop
    if drop is None:
        return None
    waited = lags(drop.recorded)
    nodes = {event.fleet_node_id for event in drop.recorded}
    last_seen = max((event.seen_at for event in drop.recorded), default=None)
    batches = drop.scans.scan_calls
    return {
        "stopped_nodes": drop.stopped,
        "offline_recorded": len(drop.recorded),
        "offline_recorded_twice": len(drop.recorded) - len(nodes),
        "false_offline": drop.false_offline,
        "online_events": drop.online_events,
        "last_crossing_after_stop_seconds": round(drop.last_crossing_at - drop.started_at, 2),
        "all_recorded_after_stop_seconds": (
            round(last_seen - drop.started_at, 2)
            if last_seen is not None and len(drop.recorded) == drop.stopped
            else None
        ),
        "lag_seconds": {
            "p50": round(waited[len(waited) // 2], 2) if waited else None,
            "p99": round(waited[math.ceil(0.99 * len(waited)) - 1], 2) if waited else None,
            "max": round(waited[-1], 2) if waited else None,
        },
        "scan": {
            "statements": batches,
            "lock_statements": drop.scans.lock_calls,
            "mean_ms": round(drop.scans.scan_ms / batches, 3) if batches else None,
        },
        "heartbeats": {
            "sent": sum(c.sent for c in drop.heartbeats),
            "ok": sum(c.ok for c in drop.heartbeats),
            "failures": sum(c.failures for c in drop.heartbeats),
        },
    }


def build(
    command: str, settings: Settings, measured: Measured, seeding: dict[str, Any]
) -> dict[str, Any]:
    steady = steady_summary(measured.steady)
    drop = drop_summary(measured)
    lag = drop["lag_seconds"]["max"] if drop else None
    targets = [
        {
            "name": "UPDATE statements per heartbeat (default debounce)",
            "value": steady["update_statements_per_heartbeat"],
            "limit": MAX_UPDATES_PER_HEARTBEAT,
            "met": (steady["update_statements_per_heartbeat"] or 0) <= MAX_UPDATES_PER_HEARTBEAT,
        },
    ]
    if drop is not None:
        targets.append(
            {
                "name": "every OFFLINE recorded within 30 s of the crossing, once, none false",
                "value": lag,
                "limit": DETECTION_LIMIT_SECONDS,
                "met": lag is not None
                and lag <= DETECTION_LIMIT_SECONDS
                and drop["offline_recorded"] == drop["stopped_nodes"]
                and drop["offline_recorded_twice"] == 0
                and drop["false_offline"] == 0,
            }
        )
    return {
        "command": command,
        "settings": {
            "nodes": settings.nodes,
            "drop": settings.drop,
            "rate": settings.rate,
            "steady_seconds": settings.steady_seconds,
            "connections": settings.connections,
            "gateway_flags": list(settings.gateway_flags),
        },
        "seeding": seeding,
        "records_events": measured.records_events,
        "warmup": phase_summary(measured.warmup),
        "steady": steady,
        "drop": drop,
        "gauge_explain": {"live": measured.explain_live, "vacuumed": measured.explain_vacuumed},
        "targets": targets,
    }


def table(report: dict[str, Any], json_path: str) -> str:
    s = report["steady"]
    us = s["cpu_us_per_heartbeat"] or {}
    lines = [
        f"steady: {s['ok']} heartbeats at {s['throughput_per_second']}/s, "
        f"p50/p99 {s['latency_ms']['p50']}/{s['latency_ms']['p99']} ms; "
        f"gateway {us.get('gateway')} us/hb, postgres {us.get('postgres')} us/hb",
        f"  UPDATE statements/hb {s['update_statements_per_heartbeat']}, "
        f"mean {s['update_statement_mean_ms']} ms ({s['update_statement_db_us_per_heartbeat']} "
        f"us/hb), rows/hb {s['rows_written_per_heartbeat']}",
        f"  offline scan: {s['offline_scan']['statements']} statements, mean "
        f"{s['offline_scan']['mean_ms']} ms ({s['offline_scan']['db_us_per_heartbeat']} us/hb); "
        f"gauge refresh: {s['gauge_refresh']['queries']} queries, mean "
        f"{s['gauge_refresh']['mean_ms']} ms",
    ]
    d = report["drop"]
    if d is not None:
        lines += [
            f"drop: {d['stopped_nodes']} stopped, {d['offline_recorded']} OFFLINE recorded "
            f"({d['offline_recorded_twice']} twice, {d['false_offline']} false, "
            f"{d['online_events']} ONLINE)",
            f"  last crossing at +{d['last_crossing_after_stop_seconds']} s after the stop, "
            f"all recorded at +{d['all_recorded_after_stop_seconds']} s",
            f"  lag after crossing p50/p99/max {d['lag_seconds']['p50']}/{d['lag_seconds']['p99']}/"
            f"{d['lag_seconds']['max']} s; scan statements {d['scan']['statements']} (+"
            f"{d['scan']['lock_statements']} lock), mean {d['scan']['mean_ms']} ms",
        ]
    for target in report["targets"]:
        lines.append(
            f"target {target['name']}: {target['value']} (limit {target['limit']}): "
            f"{'met' if target['met'] else 'MISSED'}"
        )
    lines.append(f"report: {json_path}")
    return "\n".join(lines)
