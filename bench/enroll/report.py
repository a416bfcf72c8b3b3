"""What one scenario measured, summarised: the JSON report and its table."""

from __future__ import annotations

import collections
import os
from typing import Any

from bench.enroll.fleet import FleetRun

PROCEDURES = ("Register", "BeginAuthHandshake", "CompleteAuthHandshake")
DEFAULT_TIMEOUT = 600.0
RATE_LIMITED = 'fleet_gateway_rate_limited_total{limit="auth"}'


def peak_per_second(moments: list[float]) -> int:
    """The most events within any one-second window."""
    best, low = 0, 0
    for high, moment in enumerate(moments):
        while moment - moments[low] > 1.0:
            low += 1
        best = max(best, high - low + 1)
    return best


def summarise(
    scenario: str,
    nodes: int,
    addresses: int,
    run: FleetRun,
    metrics: dict[str, float],
    database: dict[str, int],
    auth: tuple[float, int],
) -> dict[str, Any]:
    outcomes = collections.Counter(result.outcome for result in run.results)
    enrolled = sorted(round(r.finished_seconds, 2) for r in run.results if r.outcome == "enrolled")
    answers = {
        procedure: {
            status: count
            for (name, status), count in sorted(run.tally.items())
            if name == procedure
        }
        for procedure in PROCEDURES
    }
    registers = sum(answers["Register"].values())
    all_enrolled = enrolled[-1] if len(enrolled) == nodes else None
    rate, burst = auth
    # Each node needs three calls of the per-address auth bucket (Register, Begin, Complete):
    # behind one address no run can be faster than this (per gateway replica).
    floor = max(0.0, (3 * nodes / addresses - burst) / rate)
    return {
        "scenario": scenario,
        "nodes": nodes,
        "source_addresses": addresses,
        "outcomes": dict(outcomes),
        "gave_up": outcomes.get("gave up", 0),
        "seconds_until_all_enrolled": all_enrolled,
        "enrolled_seconds": {
            "first": enrolled[0] if enrolled else None,
            "median": enrolled[len(enrolled) // 2] if enrolled else None,
            "p90": enrolled[len(enrolled) * 9 // 10] if enrolled else None,
            "last": enrolled[-1] if enrolled else None,
        },
        # The agent's default --enroll-timeout: how many would have made it with it.
        "enrolled_within_10m": sum(1 for moment in enrolled if moment <= DEFAULT_TIMEOUT),
        "handshakes": len(run.handshakes_at),
        "handshakes_per_second": (
            round(len(run.handshakes_at) / all_enrolled, 1) if all_enrolled else None
        ),
        "peak_handshakes_per_second": peak_per_second(run.handshakes_at),
        "register_requests": registers,
        "register_retries": registers - nodes,
        "answers": answers,
        "gateway_rate_limited_auth": int(metrics.get(RATE_LIMITED, 0)),
        "rate_limit_floor_seconds": round(floor, 1),
        "database": database,
        "failures": sorted({r.detail for r in run.results if r.outcome != "enrolled"})[:5],
    }


def table(summary: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)

    rows = [
        ("scenario", summary["scenario"]),
        ("nodes / source addresses", f"{summary['nodes']:,} / {summary['source_addresses']:,}"),
        ("enrolled / gave up", f"{summary['outcomes'].get('enrolled', 0):,} / "
         f"{summary['gave_up']:,}"),
        ("time until all enrolled (s)", fmt(summary["seconds_until_all_enrolled"])),
        ("  first / median / p90 enrolled (s)", " / ".join(
            fmt(summary["enrolled_seconds"][key]) for key in ("first", "median", "p90")
        )),
        ("  enrolled within 10m", fmt(summary["enrolled_within_10m"])),
        ("rate-limit floor (s)", fmt(summary["rate_limit_floor_seconds"])),
        ("handshakes/s (overall, peak 1 s)", f"{fmt(summary['handshakes_per_second'])}, "
         f"{summary['peak_handshakes_per_second']}"),
        ("Register requests / retries", f"{summary['register_requests']:,} / "
         f"{summary['register_retries']:,}"),
        ("answers", "; ".join(
            f"{name} " + " ".join(f"{status}:{count}" for status, count in statuses.items())
            for name, statuses in summary["answers"].items()
        )),
        ("auth 429s (gateway metric)", fmt(summary["gateway_rate_limited_auth"])),
        ("database: live nodes, code uses", f"{summary['database']['live_confirmed_nodes']:,}, "
         f"{summary['database']['code_uses']:,}"),
    ]  # fmt: skip
    if "cpu_percent_of_one_core" in summary:
        cpu = summary["cpu_percent_of_one_core"]
        rows.append(("CPU % of one core (gateway, pg, fleet, machine)",
                     f"{cpu.get('gateway')}, {cpu.get('postgres')}, {cpu.get('generator')}, "
                     f"{cpu.get('machine')} of {100 * (os.cpu_count() or 1)}"))  # fmt: skip
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
