"""Which metric names PromQL expressions select, and which names the gateway exports.

Shared by the alert-rule and the dashboard tests: both must speak only of series that exist,
or an alert silently never fires and a panel silently stays empty.

`metric_names` is enough of PromQL's lexer to find every selected metric name, not a parser
(promtool validates the syntax): strings, label matchers, ranges, grouping label lists and
Grafana variables are dropped; an identifier followed by "(" is a function or an aggregation;
what remains, minus keywords, is a metric name.
"""

from __future__ import annotations

import re

from gateway.metrics import new_metrics

# Series every Prometheus makes itself for each scrape target.
PROMETHEUS_SERIES = frozenset({"up"})

# The series names each metric type exposes (prometheus-client drops "_total" from a counter's
# family name). "_created" series are exported too.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}

_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "atan2", "inf", "nan"}
)

_NAME_MATCHER = re.compile(
    r"""__name__\s*(=~|!=|!~|=)\s*(?:"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)')"""
)
_DROP = (
    re.compile(r"#[^\n]*"),  # comments
    re.compile(r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`"""),  # string literals
    re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]"),  # Grafana variables ($org, ${org}, [[org]])
    re.compile(r"\{[^}]*\}"),  # label matchers (strings already gone, so no "}" inside)
    re.compile(r"\[[^\]]*\]"),  # ranges and subqueries
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.I),
)
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> frozenset[str]:
    """The metric names `expr` selects, by bare name or by an exact `__name__` matcher."""
    names = set()
    for op, double_quoted, single_quoted in _NAME_MATCHER.findall(expr):
        if op != "=":
            raise ValueError(f"cannot check a {op!r} matcher on __name__: {expr!r}")
        names.add(double_quoted or single_quoted)
    stripped = expr
    for pattern in _DROP:
        stripped = pattern.sub(" ", stripped)
    for identifier, call in _IDENTIFIER.findall(stripped):
        if not call and identifier.lower() not in _KEYWORDS:
            names.add(identifier)
    return frozenset(names)


def exported_families() -> dict[str, frozenset[str]]:
    """Each metric family of a gateway's registry, with the series names it puts on /metrics."""
    return {
        family.name: frozenset(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        for family in new_metrics().registry.collect()
    }


def exported_metric_names() -> frozenset[str]:
    """Every series name a gateway's /metrics can carry."""
    return frozenset().union(*exported_families().values())
