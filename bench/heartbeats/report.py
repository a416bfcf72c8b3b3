"""The run's report: one JSON document (bench/results/*.json) and the table printed from it.

Every figure sits next to the ceiling measured in the same run (STYLE: bench/).
Write figures come from PostgreSQL's own statistics (pg_stat_statements calls of the
group-commit UPDATE, pg_stat_user_tables.n_tup_upd of fleet_nodes,
pg_stat_database.xact_commit) and are cross-checked against the gateway's /metrics.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from typing import Any

from bench.heartbeats import gateway_proc as gp
from bench.heartbeats.loadgen import PhaseResult
from bench.heartbeats.run import Measured, Settings
from bench.heartbeats.seed import Seeded

# The targets of the issue this benchmark closes (bench/README.md).
MAX_P99_MS = 100.0
MAX_UPDATES_PER_HEARTBEAT = 0.05
MIN_RATIO_DEBOUNCED = 0.80  # heartbeats/s over the reference's, closed loop
MAX_CPU_RATIO_DEBOUNCED = 1.25  # gateway µs per heartbeat over the reference's
MIN_RATIO_WRITE_THROUGH = 0.60
MAX_RSS_MB = 300.0
KEPT_UP_FRACTION = 0.999
MAX_GC_PAUSE_SECONDS = 0.020
GC_PAUSE = "fleet_gateway_gc_pause_seconds"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def phase_summary(phase: PhaseResult) -> dict[str, Any]:
    return {
        "mode": phase.mode,
        "target": phase.target,
        "connections": phase.connections,
        "offered_per_second": phase.offered_rate,
        "sent": phase.sent,
        "completed": phase.completed,
        "ok": phase.ok,
        "statuses": {str(code): count for code, count in phase.statuses.items()},
        "failures": phase.failures,
        "wall_seconds": round(phase.wall_seconds, 3),
        "throughput_per_second": round(phase.throughput, 1),
        "latency_ms": {
            "p50": _ms(phase.percentile(0.50)),
            "p90": _ms(phase.percentile(0.90)),
            "p99": _ms(phase.percentile(0.99)),
            "p99.9": _ms(phase.percentile(0.999)),
            "max": _ms(phase.max_latency),
        },
        "generator_cpu_percent": round(
            100 * phase.generator_cpu_seconds / phase.wall_seconds if phase.wall_seconds else 0, 1
        ),
    }


def _per(value: float, count: float) -> float | None:
    return round(value / count, 5) if count else None


def cpu_per_request_us(cpu: dict[str, float], phase: PhaseResult) -> dict[str, float] | None:
    """Microseconds of each party's CPU per answered request: unlike throughput, hardly
    moved by what else runs on the machine."""
    if not cpu or not phase.throughput:
        return None
    return {
        name: round(10_000 * cpu[name] / phase.throughput, 1)
        for name in ("gateway", "postgres", "generator")
    }


def gc_pauses(before: dict[str, float], after: dict[str, float]) -> dict[str, Any] | None:
    """The gateway's GC pauses during the phase, from its histogram: how many, their total,
    and the bucket holding the longest (its upper bound; the histogram keeps no maximum)."""
    count = after.get(f"{GC_PAUSE}_count")
    if count is None:
        return None
    buckets: list[tuple[float, float]] = []
    for key, value in after.items():
        if key.startswith(f"{GC_PAUSE}_bucket{{") and 'le="+Inf"' not in key:
            bound = float(key.split('le="', 1)[1].split('"', 1)[0])
            buckets.append((bound, value - before.get(key, 0.0)))
    buckets.sort()
    pauses = count - before.get(f"{GC_PAUSE}_count", 0.0)
    longest_at_most: float | None = None
    for bound, cumulative in buckets:
        if cumulative >= pauses:
            longest_at_most = bound
            break
    total = after.get(f"{GC_PAUSE}_sum", 0.0) - before.get(f"{GC_PAUSE}_sum", 0.0)
    over = [bound for bound, cumulative in buckets if cumulative < pauses]
    return {
        "pauses": round(pauses),
        "total_ms": round(total * 1000, 1),
        "longest_ms_at_most": None if longest_at_most is None else longest_at_most * 1000,
        "longest_ms_over": max(over) * 1000 if over else 0.0,
    }


def cpu_us(cpu: dict[str, float], phase: PhaseResult | None) -> float | None:
    """The server's (``gateway`` key) CPU µs per answered request."""
    if phase is None:
        return None
    per = cpu_per_request_us(cpu, phase)
    return per["gateway"] if per else None


def writes_summary(measured: Measured) -> dict[str, Any]:
    before, after = measured.pg_before, measured.pg_after
    beats = measured.heartbeat.ok
    wall = measured.heartbeat.wall_seconds
    statements = after.write_statements - before.write_statements
    rows = after.fleet_nodes_updated_rows - before.fleet_nodes_updated_rows
    xacts = after.xact_commit - before.xact_commit - measured.own_reads
    m0, m1 = measured.metrics_before, measured.metrics_after

    def metric(name: str, **labels: str) -> int:
        if labels:
            key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
            return round(m1.get(key, 0.0) - m0.get(key, 0.0))
        return round(gp.delta(m1, m0, name))

    gateway = {
        "heartbeats_received": metric("fleet_gateway_heartbeats_received_total"),
        "heartbeats_debounced": metric("fleet_gateway_heartbeats_debounced_total"),
        "last_seen_statements": metric("fleet_gateway_last_seen_statements_total"),
        "last_seen_rows_written": metric("fleet_gateway_last_seen_rows_written_total"),
        "session_cache_hits": metric("fleet_gateway_session_cache_total", result="hit"),
        "session_cache_misses": metric("fleet_gateway_session_cache_total", result="miss"),
        "rate_limited": metric("fleet_gateway_rate_limited_total"),
    }
    return {
        "postgres": {
            "update_statements": statements,
            "update_statements_per_second": round(statements / wall, 2) if wall else None,
            "update_statements_per_heartbeat": _per(statements, beats),
            "rows_updated": rows,
            "rows_updated_per_second": round(rows / wall, 1) if wall else None,
            "rows_updated_per_heartbeat": _per(rows, beats),
            "rows_hot_updated": after.fleet_nodes_hot_updated_rows
            - before.fleet_nodes_hot_updated_rows,
            "nodes_offered_to_statements": after.write_statement_rows - before.write_statement_rows,
            "update_statement_mean_ms": (
                round((after.write_statement_ms - before.write_statement_ms) / statements, 2)
                if statements
                else None
            ),
            "transactions": xacts,
            "transactions_per_second": round(xacts / wall, 1) if wall else None,
        },
        "gateway_metrics": gateway,
        "cross_check": {
            "statements_agree": statements == gateway["last_seen_statements"],
            "rows_agree": rows == gateway["last_seen_rows_written"],
            # wrk counts no answer that arrives after its duration: up to one per connection.
            "heartbeats_agree": (
                0 <= gateway["heartbeats_received"] - beats <= measured.heartbeat.connections
                if measured.heartbeat.generator == "wrk"
                else beats == gateway["heartbeats_received"]
            ),
        },
    }


def _target(name: str, value: float | None, limit: float, at_most: bool) -> dict[str, Any]:
    met = value is not None and (value <= limit if at_most else value >= limit)
    return {"name": name, "value": value, "limit": limit, "at_most": at_most, "met": met}


def targets(settings: Settings, measured: Measured, writes: dict[str, Any]) -> list[dict[str, Any]]:
    beat = measured.heartbeat
    out = []
    if settings.rate is not None:
        # Kept up: (nearly) every offered heartbeat answered OK; a gateway that falls
        # behind shows in p99, measured from each heartbeat's due time.
        kept_up = round(beat.ok / beat.sent, 5) if beat.sent else 0.0
        out.append(_target("kept_up_fraction_of_offered", kept_up, KEPT_UP_FRACTION, False))
        out.append(_target("p99_ms", _ms(beat.percentile(0.99)), MAX_P99_MS, True))
        per_beat = writes["postgres"]["update_statements_per_heartbeat"]
        out.append(
            _target("update_statements_per_heartbeat", per_beat, MAX_UPDATES_PER_HEARTBEAT, True)
        )
        gc = gc_pauses(measured.metrics_before, measured.metrics_after)
        if gc is not None and settings.processes == 1:
            # Met when every pause fell in a bucket up to 20 ms (its upper bound).
            longest = gc["longest_ms_at_most"]
            out.append(_target("gc_pause_longest_ms", longest, MAX_GC_PAUSE_SECONDS * 1000, True))
    elif measured.reference is not None and measured.reference.throughput:
        ratio = round(beat.throughput / measured.reference.throughput, 3)
        debounced = settings.last_seen_debounce.strip() not in ("0", "0s", "0ms")
        limit = MIN_RATIO_DEBOUNCED if debounced else MIN_RATIO_WRITE_THROUGH
        out.append(_target("throughput_ratio_to_reference", ratio, limit, False))
        gw = cpu_us(measured.cpu_heartbeat, beat)
        ref = cpu_us(measured.cpu_reference, measured.reference)
        if debounced and gw and ref:
            cpu_ratio = round(gw / ref, 3)
            out.append(_target("cpu_ratio_to_reference", cpu_ratio, MAX_CPU_RATIO_DEBOUNCED, True))
    out.append(
        _target(
            "rss_mb_with_sessions_cached", round(measured.rss_after_warmup_mb, 1), MAX_RSS_MB, True
        )
    )
    return out


def build(
    command: str,
    settings: Settings,
    seeded: Seeded,
    seed_mode: str,
    fsync: bool,
    measured: Measured,
    load_before: tuple[float, float, float],
    started_at: datetime.datetime,
) -> dict[str, Any]:
    writes = writes_summary(measured)
    ceiling, reference = measured.ceiling, measured.reference
    gw_us = cpu_us(measured.cpu_heartbeat, measured.heartbeat)
    ref_us = cpu_us(measured.cpu_reference, reference)
    handshake_cpu = measured.cpu_handshakes.get("gateway", 0.0) * measured.handshake_seconds
    return {
        "command": command,
        "started_at": started_at.isoformat().replace("+00:00", "Z"),
        "settings": {
            "nodes": settings.nodes,
            "mode": settings.mode,
            "rate_per_second": settings.rate,
            "heartbeat_interval_seconds": (
                round(settings.nodes / settings.rate, 2) if settings.rate else None
            ),
            "duration_seconds": settings.duration_seconds,
            "connections": settings.connections,
            "last_seen_debounce": settings.last_seen_debounce,
            "flush_interval": settings.flush_interval or "default (20ms)",
            "postgres_fsync": fsync,
            "gateway_flags": settings.gateway_flags(),
            "gateway_processes": settings.processes,
            "closed_loop_generator": settings.generator if settings.rate is None else None,
            "event_loop": settings.loop,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": sys.platform,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "seeding": {
            "mode": seed_mode,
            "nodes": len(seeded.nodes),
            "seconds": round(seeded.seconds, 2),
            "nodes_per_second": round(len(seeded.nodes) / seeded.seconds, 1),
            "processes": seeded.processes,
            "handshake_sample": measured.handshakes,
            "handshake_seconds": round(measured.handshake_seconds, 2),
            "handshakes_per_second": (
                round(measured.handshakes / measured.handshake_seconds, 1)
                if measured.handshake_seconds
                else None
            ),
            "gateway_cpu_us_per_handshake": (
                round(10_000 * handshake_cpu / measured.handshakes, 1)
                if measured.handshakes
                else None
            ),
        },
        "warmup": phase_summary(measured.warmup) if measured.warmup else None,
        "heartbeats": phase_summary(measured.heartbeat),
        "ceiling": phase_summary(ceiling) if ceiling else None,
        "reference": phase_summary(reference) if reference else None,
        "throughput_ratio_to_ceiling": (
            round(measured.heartbeat.throughput / ceiling.throughput, 3)
            if ceiling and ceiling.throughput
            else None
        ),
        "throughput_ratio_to_reference": (
            round(measured.heartbeat.throughput / reference.throughput, 3)
            if reference and reference.throughput
            else None
        ),
        "cpu_ratio_to_reference": round(gw_us / ref_us, 3) if gw_us and ref_us else None,
        "gc_pauses": gc_pauses(measured.metrics_before, measured.metrics_after),
        "writes": writes,
        "cpu_percent_of_one_core": {
            "heartbeats": measured.cpu_heartbeat,
            "ceiling": measured.cpu_ceiling,
            "reference": measured.cpu_reference,
            "handshakes": measured.cpu_handshakes,
        },
        "cpu_us_per_request": {
            "heartbeats": cpu_per_request_us(measured.cpu_heartbeat, measured.heartbeat),
            "ceiling": cpu_per_request_us(measured.cpu_ceiling, ceiling) if ceiling else None,
            "reference": (
                cpu_per_request_us(measured.cpu_reference, reference) if reference else None
            ),
        },
        "gateway_rss_mb": {
            "after_warmup": round(measured.rss_after_warmup_mb, 1),
            "after_heartbeats": round(measured.rss_after_heartbeats_mb, 1),
            "end": round(measured.rss_end_mb, 1),
            "peak": round(measured.rss_peak_mb, 1),
        },
        "cold_paths": measured.cold_paths,
        "targets": targets(settings, measured, writes),
        "gateway_log": measured.gateway_log,
    }


# --- the table ---------------------------------------------------------------------------------

_COLUMNS = (
    ("phase", 18), ("sent", 8), ("ok", 8), ("other", 6), ("req/s", 8), ("p50 ms", 8),
    ("p99 ms", 8), ("p99.9", 8), ("max ms", 8), ("gen%", 6), ("gw%", 6), ("pg%", 6), ("others%", 8),
)  # fmt: skip


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def _row(name: str, phase: dict[str, Any] | None, cpu: dict[str, float]) -> str:
    if phase is None:
        return ""
    lat = phase["latency_ms"]
    values = (
        name, phase["sent"], phase["ok"], phase["completed"] - phase["ok"] + phase["failures"],
        phase["throughput_per_second"], lat["p50"], lat["p99"], lat["p99.9"], lat["max"],
        phase["generator_cpu_percent"], cpu.get("gateway"), cpu.get("postgres"), cpu.get("others"),
    )  # fmt: skip
    cells = zip(_COLUMNS, values, strict=True)
    return "".join(
        _fmt(v).rjust(width) if i else _fmt(v).ljust(width)
        for i, ((_, width), v) in enumerate(cells)
    )


def table(report: dict[str, Any], json_path: str) -> str:
    st, seed, cpu = report["settings"], report["seeding"], report["cpu_percent_of_one_core"]
    offered = (
        f"{st['rate_per_second']:g}/s offered"
        f" (every node each {st['heartbeat_interval_seconds']} s)"
        if st["mode"] == "open"
        else "as fast as possible"
    )
    lines = [
        f"heartbeats: {st['mode']} loop, {st['nodes']} nodes, {offered},"
        f" {st['duration_seconds']:g} s,"
        f" {st['connections']} connections, --last-seen-debounce {st['last_seen_debounce']},"
        f" fsync {'on' if st['postgres_fsync'] else 'off'}",
        f"seeding ({seed['mode']}): {seed['nodes']} nodes in {seed['seconds']} s"
        f" ({seed['nodes_per_second']:g}/s, {seed['processes']} processes), not measured;"
        f" real HTTP handshakes: {seed['handshake_sample']} in {seed['handshake_seconds']} s",
        "",
        "".join(name.ljust(w) if i == 0 else name.rjust(w) for i, (name, w) in enumerate(_COLUMNS)),
        _row("warm-up (1/node)", report["warmup"], {}),
        _row("heartbeats", report["heartbeats"], cpu["heartbeats"]),
        _row("ceiling /healthz", report["ceiling"], cpu["ceiling"]),
        _row("reference hb", report["reference"], cpu.get("reference", {})),
        "",
    ]
    pg, gw = report["writes"]["postgres"], report["writes"]["gateway_metrics"]
    gc = report["gc_pauses"]
    lines += [
        f"throughput heartbeats / reference: {_fmt(report['throughput_ratio_to_reference'])},"
        f" / healthz: {_fmt(report['throughput_ratio_to_ceiling'])};"
        f" gateway CPU per heartbeat / reference's: {_fmt(report['cpu_ratio_to_reference'])}",
        "CPU us per request (gateway/postgres/generator): "
        + "; ".join(
            f"{name} " + "/".join(_fmt(v) for v in us.values())
            for name, us in report["cpu_us_per_request"].items()
            if us
        ),
        f"PostgreSQL: {pg['update_statements']} UPDATE statements"
        f" ({_fmt(pg['update_statements_per_second'])}/s,"
        f" {_fmt(pg['update_statements_per_heartbeat'])}/heartbeat), {pg['rows_updated']} rows"
        f" ({_fmt(pg['rows_updated_per_second'])}/s,"
        f" {_fmt(pg['rows_updated_per_heartbeat'])}/heartbeat, {pg['rows_hot_updated']} HOT),"
        f" {pg['transactions']} transactions ({_fmt(pg['transactions_per_second'])}/s);"
        f" UPDATE mean {_fmt(pg['update_statement_mean_ms'])} ms in PostgreSQL",
        f"/metrics:   {gw['last_seen_statements']} statements, {gw['last_seen_rows_written']} rows,"
        f" {gw['heartbeats_received']} received, {gw['heartbeats_debounced']} debounced,"
        f" session cache {gw['session_cache_hits']} hits / {gw['session_cache_misses']} misses;"
        f" agree with PostgreSQL: {all(report['writes']['cross_check'].values())}",
        (
            f"GC pauses while measuring: {gc['pauses']}, {gc['total_ms']} ms in all, longest"
            f" <= {_fmt(gc['longest_ms_at_most'])} ms (> {_fmt(gc['longest_ms_over'])} ms)"
            if gc
            else "GC pauses: not in /metrics"
        ),
        f"handshakes (Begin + Complete over HTTP, cold gateway): {seed['handshake_sample']},"
        f" {_fmt(seed['handshakes_per_second'])}/s,"
        f" gateway {_fmt(seed['gateway_cpu_us_per_handshake'])} us each",
        "gateway RSS MB: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report["gateway_rss_mb"].items()),
        f"machine: {report['machine']['cpus']} CPUs, load average before"
        f" {report['machine']['loadavg_before'][0]}, after {report['machine']['loadavg_after'][0]}"
        " (gen/gw/pg/others% = % of one core; gw% = the server under test: the reference's"
        " processes in its row)",
        "",
    ]
    for cold in report.get("cold_paths") or ():
        lines.append(
            f"cold path {cold['name']}: {cold['ok']} of {cold['calls']} in {cold['seconds']} s,"
            f" {_fmt(cold['calls_per_second'])}/s, gateway {_fmt(cold['gateway_cpu_us_per_call'])}"
            f" us, postgres {_fmt(cold['postgres_cpu_us_per_call'])} us per call"
            + (
                f" ({cold['session_cache_misses']} cache misses, {cold['update_statements']}"
                f" statements, {cold['rows_written']} rows written)"
                if "session_cache_misses" in cold
                else ""
            )
        )
    if report.get("cold_paths"):
        lines.append("")
    for t in report["targets"]:
        sign = "<=" if t["at_most"] else ">="
        lines.append(
            f"target {t['name']}: {_fmt(t['value'])} {sign} {t['limit']:g}:"
            f" {'MET' if t['met'] else 'MISSED'}"
        )
    lines += [
        "",
        f"product: {report.get('product_revision', 'unknown')}",
        f"json: {json_path}",
        f"reproduce: {report['command']}",
    ]
    return "\n".join(line for line in lines)
