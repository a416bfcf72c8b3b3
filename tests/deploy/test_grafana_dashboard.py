"""The Grafana dashboard in deploy/grafana: importable, and drawn only from series that exist."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.promql_names import (
    PROMETHEUS_SERIES,
    exported_families,
    exported_metric_names,
    metric_names,
)
from tests.deploy.promtool_support import run_promtool

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fleet-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed children included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def graph_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in panels(dashboard) if panel["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    """Each PromQL expression of the panels and of the variables' label_values() queries."""
    for panel in graph_panels(dashboard):
        for target in panel["targets"]:
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert match is not None, f"variable {variable['name']}: {query!r}"
            yield match[1]


def test_dashboard_is_a_grafana_dashboard_with_a_prometheus_datasource_variable(
    dashboard: dict[str, Any],
) -> None:
    """The file is a schema-39 dashboard whose data source is chosen by a variable."""
    assert dashboard["schemaVersion"] == 39
    assert dashboard["title"] and dashboard["uid"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE


def test_every_panel_has_a_title_and_queries_on_the_chosen_datasource(
    dashboard: dict[str, Any],
) -> None:
    """Each panel has a title, a place, and at least one query of the data source variable."""
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel.get("title"), panel
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
    for panel in graph_panels(dashboard):
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == DATASOURCE, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def as_promql(expr: str) -> str:
    """The query Grafana sends: intervals become durations, variables become match-all regexps."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{\w+\}|\$\w+", ".*", expr)


def test_every_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool parses every query, once Grafana's variables are filled in."""
    # promtool parses expressions only inside rule files; JSON is YAML, so one is easy to write.
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{index}", "expr": as_promql(expr)}
                    for index, expr in enumerate(expressions(dashboard))
                ],
            }
        ]
    }
    (tmp_path / "queries.yml").write_text(json.dumps(rules))
    output = run_promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert f"{len(rules['groups'][0]['rules'])} rules found" in output


def test_dashboard_selects_only_series_the_gateway_exports(dashboard: dict[str, Any]) -> None:
    """Every metric name in every query is one a gateway replica exports, or Prometheus's up."""
    for expr in expressions(dashboard):
        names = metric_names(expr)
        assert names, expr
        assert names <= exported_metric_names() | PROMETHEUS_SERIES, expr


def test_dashboard_draws_every_metric_the_gateway_exports(dashboard: dict[str, Any]) -> None:
    """Each metric family the gateway exports appears on some panel."""
    selected = frozenset().union(*map(metric_names, expressions(dashboard)))
    undrawn = [family for family, names in exported_families().items() if not names & selected]
    assert undrawn == []
