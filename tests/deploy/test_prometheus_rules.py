"""The alert rules and the sample Prometheus configuration in deploy/prometheus.

The expected alerts live in fleet-alerts.test.yml, where `promtool test rules` reads them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.deploy.promql_names import PROMETHEUS_SERIES, exported_metric_names, metric_names
from tests.deploy.promtool_support import find_promtool, run_promtool

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "fleet-alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "fleet-alerts.test.yml"
SAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"

# Series Prometheus writes itself while evaluating alerting rules.
RULE_SERIES = frozenset({"ALERTS"})


def rule_expressions(text: str) -> list[str]:
    """Each rule's `expr:` from the rules file, written plain or as a `|` block.

    A minimal reader of the one YAML shape the file uses (no YAML library in the test deps);
    it refuses other shapes rather than miss an expression, and the caller checks its count
    against promtool's.
    """
    lines = text.splitlines()
    exprs = []
    for index, line in enumerate(lines):
        match = re.match(r"^( *)(- )?expr:(.*)$", line)
        if match is None:
            continue
        key_indent = len(match[1]) + len(match[2] or "")
        value = match[3].strip()
        if value in ("|", "|-"):
            block = []
            for following in lines[index + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= key_indent:
                    break
                block.append(following)
            exprs.append("\n".join(block).strip())
        elif value and value[0] not in "|>\"'":
            exprs.append(value)
        else:
            raise ValueError(f"write expr: plain or as a | block, not {line!r}")
    return exprs


def test_find_promtool_fails_with_how_to_install_it() -> None:
    """Without promtool on PATH the rule tests fail and say how to install it, never skip."""
    with pytest.raises(pytest.fail.Exception, match="apt-get download prometheus"):
        find_promtool(search_path=os.devnull)


def test_rules_file_is_valid() -> None:
    """promtool accepts the rules file, and the reader below sees every rule it counts."""
    output = run_promtool("check", "rules", RULES, cwd=PROMETHEUS_DIR)
    counted = re.search(r"SUCCESS: (\d+) rules found", output)
    assert counted is not None, output
    assert len(rule_expressions(RULES.read_text())) == int(counted[1])


def test_rules_fire_as_their_unit_tests_expect() -> None:
    """Every case of fleet-alerts.test.yml (mass offline, one node, replicas down, ...) holds."""
    output = run_promtool("test", "rules", RULE_TESTS, cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in output


def test_every_alert_has_unit_tests() -> None:
    """Each alert of the rules file is asserted on by name in the unit tests."""
    alerts = set(re.findall(r"^\s*- alert: (\w+)\s*$", RULES.read_text(), re.M))
    tested = set(re.findall(r"^\s*alertname: (\w+)\s*$", RULE_TESTS.read_text(), re.M))
    assert len(alerts) >= 7
    assert alerts <= tested, f"alerts without a unit test: {sorted(alerts - tested)}"


def test_rules_select_only_series_that_exist() -> None:
    """The rules read only metrics the gateway exports, Prometheus's own series, or their own."""
    text = RULES.read_text()
    recorded = frozenset(re.findall(r"^\s*- record: (\S+)\s*$", text, re.M))
    selected = frozenset().union(*map(metric_names, rule_expressions(text)))
    allowed = exported_metric_names() | PROMETHEUS_SERIES | RULE_SERIES | recorded
    assert selected - allowed == set()
    assert {
        "fleet_nodes",
        "up",
        "fleet_gateway_ready",
        "fleet_gateway_listener_up",
        "fleet_gateway_background_task_failures_total",
    } <= selected


def test_sample_prometheus_config_is_valid() -> None:
    """The sample prometheus.yml is a valid configuration that loads the rules file."""
    output = run_promtool("check", "config", SAMPLE_CONFIG, cwd=PROMETHEUS_DIR)
    assert "1 rule files found" in output
