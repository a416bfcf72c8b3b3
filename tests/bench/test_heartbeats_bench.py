"""bench.heartbeats end to end: its own PostgreSQL, a real gateway subprocess, a JSON report.

Each test runs the generator's command for a couple of seconds and asserts on what
the report says happened (counts, fields, their consistency), never on timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NODES = 200
RATE = 100


def run_bench(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.heartbeats", "--nodes", str(NODES),
            "--handshake-sample", "4", "--fsync", "off", "--stats-quiet", "500ms",
            "--connections", "16",
            "--json", str(out), *args,
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report, done.stdout


def test_open_loop_run_reports_every_phase(tmp_path: Path) -> None:
    """An open-loop run answers every offered heartbeat from real sessions, in every phase."""
    # A 2 s debounce keeps the steady warm-up (spread over the debounce window) short.
    report, stdout = run_bench(
        tmp_path, "--rate", str(RATE), "--duration", "2s", "--last-seen-debounce", "2s"
    )
    assert report["seeding"]["nodes"] == NODES
    assert report["seeding"]["handshake_sample"] == 4
    # Every seeded session was resolved by the gateway during the warm-up.
    assert report["warmup"]["ok"] == report["warmup"]["sent"] == NODES
    beats = report["heartbeats"]
    assert beats["mode"] == "open"
    assert beats["sent"] == RATE * 2
    assert beats["statuses"] == {"200": RATE * 2}
    assert beats["failures"] == 0
    latency = beats["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    ceiling = report["ceiling"]
    assert ceiling["target"] == "healthz"
    assert ceiling["connections"] == beats["connections"] == 16
    assert ceiling["statuses"] == {"200": RATE * 2}
    assert report["writes"]["gateway_metrics"]["heartbeats_received"] == RATE * 2
    assert report["gateway_rss_mb"]["peak"] >= report["gateway_rss_mb"]["end"] > 0
    assert {t["name"] for t in report["targets"]} >= {
        "kept_up_fraction_of_offered",
        "p99_ms",
        "update_statements_per_heartbeat",
    }
    assert f"reproduce: {report['command']}" in stdout
    assert f"--nodes {NODES}" in report["command"]


def test_closed_loop_without_debounce_writes_every_heartbeat(tmp_path: Path) -> None:
    """With --last-seen-debounce 0 every answered heartbeat was written, in fewer statements."""
    # The Python generator: it counts every answer, where wrk drops those still in flight.
    report, _ = run_bench(
        tmp_path, "--max", "--duration", "1s", "--last-seen-debounce", "0", "--warmup", "none",
        "--generator", "python",
    )  # fmt: skip
    beats = report["heartbeats"]
    assert beats["mode"] == "closed"
    assert beats["ok"] == beats["completed"] > 0
    metrics = report["writes"]["gateway_metrics"]
    assert metrics["heartbeats_received"] == beats["ok"]
    assert metrics["heartbeats_debounced"] == 0
    assert metrics["last_seen_rows_written"] == beats["ok"]
    # Group commit: many rows per UPDATE statement.
    assert 0 < metrics["last_seen_statements"] < beats["ok"]
    assert report["ceiling"]["mode"] == "closed"
    assert report["throughput_ratio_to_ceiling"] > 0


def test_two_replicas_the_reference_ceiling_and_the_cold_paths(tmp_path: Path) -> None:
    """Two gateway replicas on one port answer every heartbeat, the reference serves the same
    tokens in the same run, and every cold path is measured call for call."""
    report, stdout = run_bench(
        tmp_path, "--max", "--duration", "1s", "--processes", "2", "--cold-paths", "20"
    )
    assert report["settings"]["gateway_processes"] == 2
    beats, reference = report["heartbeats"], report["reference"]
    assert beats["ok"] == beats["completed"] > 0
    assert beats["failures"] == 0
    assert reference["target"] == "heartbeat"
    assert reference["ok"] == reference["completed"] > 0
    assert report["throughput_ratio_to_reference"] > 0
    assert report["cpu_us_per_request"]["reference"]["gateway"] > 0
    cold = {path["name"]: path for path in report["cold_paths"]}
    assert set(cold) == {"heartbeat_cache_miss", "handshake", "create_enrollment_code", "register"}
    assert all(path["ok"] == path["calls"] == 20 for path in cold.values())
    assert cold["heartbeat_cache_miss"]["session_cache_misses"] == 20
    assert "cold path register: 20 of 20" in stdout
