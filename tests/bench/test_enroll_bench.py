"""bench.enroll end to end, small: its own PostgreSQL, a real gateway subprocess, the agent's
enroll code path for every node, and a JSON report whose counts agree with the database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODES = 12


def test_both_scenarios_enroll_every_node_and_report_it(tmp_path: Path) -> None:
    """From 12 addresses and from one (rate-limited) address, all 12 nodes enroll with one
    12-use code; the report's counts match the database and the gateway's metrics."""
    out = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.enroll", "--nodes", str(NODES),
            "--enroll-timeout", "2m", "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["command"].startswith(".venv/bin/python -m bench.enroll --nodes 12")
    by_name = {s["scenario"]: s for s in report["scenarios"]}
    assert set(by_name) == {"addresses", "nat"}
    for summary in by_name.values():
        assert summary["outcomes"] == {"enrolled": NODES} and summary["gave_up"] == 0
        assert summary["database"] == {"live_confirmed_nodes": NODES, "code_uses": NODES}
        assert summary["handshakes"] == NODES
        assert summary["answers"]["Register"].get("200") == NODES
        assert summary["register_retries"] == summary["register_requests"] - NODES
        assert summary["seconds_until_all_enrolled"] > 0
    assert by_name["addresses"]["source_addresses"] == NODES
    assert by_name["addresses"]["gateway_rate_limited_auth"] == 0
    nat = by_name["nat"]
    assert nat["source_addresses"] == 1
    # 36 auth calls against a burst of 20 from one address: the limit had to answer 429.
    assert nat["gateway_rate_limited_auth"] > 0
    assert nat["seconds_until_all_enrolled"] >= nat["rate_limit_floor_seconds"] > 0
