"""bench.offline end to end: its own PostgreSQL, a real gateway subprocess, a JSON report.

Short intervals (a 2 s debounce, a 12 s --offline-after) so the drop phase takes seconds;
the assertions are on what the report says happened (counts, fields), never on timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_offline_run_records_each_stopped_node_once(tmp_path: Path) -> None:
    """Of 200 nodes, the 20 that stop get one OFFLINE each, the others none, and the report
    carries the steady phase's write figures and the gauge query's plans."""
    out = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.offline", "--nodes", "200", "--drop", "20",
            "--rate", "50", "--steady", "3s", "--connections", "16",
            "--last-seen-debounce", "2s", "--offline-after", "12s", "--heartbeat-interval", "5s",
            "--fsync", "off", "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert report["records_events"] is True
    steady = report["steady"]
    assert steady["ok"] == steady["sent"] == 150
    assert steady["update_statements"] > 0
    drop = report["drop"]
    assert drop["stopped_nodes"] == drop["offline_recorded"] == 20
    assert (drop["offline_recorded_twice"], drop["false_offline"], drop["online_events"]) == (
        0, 0, 0,
    )  # fmt: skip
    assert drop["all_recorded_after_stop_seconds"] is not None
    assert drop["scan"]["statements"] >= 1
    assert "fleet_nodes" in report["gauge_explain"]["vacuumed"]
    assert "OFFLINE recorded" in done.stdout
