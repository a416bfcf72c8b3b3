"""The metric-name reader that the rule and dashboard tests rely on."""

from __future__ import annotations

import attrs
import pytest
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from gateway.metrics import Metrics, new_metrics
from tests.deploy.promql_names import exported_metric_names, metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("max by (org, connectivity) (fleet_nodes)", {"fleet_nodes"}),
        (
            'up{job="fleet-gateway"} == 0 unless on () max(up{job="fleet-gateway"}) == 0',
            {"up"},
        ),
        (
            "histogram_quantile(0.99, sum by (procedure, le) "
            '(rate(a_bucket{instance=~"$instance", x="b{c}"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        (
            "increase(a_total[10m:1m] offset 5m) > 1e3 AND ON(instance) group_left(task) b"
            " or c:recorded:ratio unless Inf # d",
            {"a_total", "b", "c:recorded:ratio"},
        ),
        ("{__name__=\"a\"} + sum(b) without (c) / 0x1f + ${var} * 'd' + `e`", {"a", "b"}),
    ],
)
def test_metric_names_finds_every_selected_metric_and_nothing_else(
    expr: str, names: set[str]
) -> None:
    """Names are found past functions, matchers, ranges, grouping lists, strings and variables."""
    assert metric_names(expr) == names


def test_metric_names_refuses_a_name_it_cannot_check() -> None:
    """A regular-expression matcher on __name__ is refused rather than let through unchecked."""
    with pytest.raises(ValueError, match="__name__"):
        metric_names('{__name__=~"fleet_.*"}')


def test_exported_names_are_those_metrics_prints() -> None:
    """The exported names are exactly what /metrics prints once every metric has a sample."""
    metrics = new_metrics()
    for field in attrs.fields(Metrics):
        metric = getattr(metrics, field.name)
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(*["x"] * len(metric._labelnames))
    text = generate_latest(metrics.registry).decode()
    printed = {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert printed == exported_metric_names()
