"""The PromQL of ``deploy/`` (alert rules, Grafana dashboard) and the metric names it reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

#: The sources live in the Helm chart (its templates read them with .Files.Get, which reaches
#: only files inside the chart); deploy/prometheus and deploy/grafana link to them.
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "karrot-streams" / "files"
RULES = DEPLOY / "prometheus" / "karrot-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "karrot-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "karrot-streams.json"

#: Series Prometheus records itself for each scrape target, never in a worker's /metrics.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are neither functions nor keywords.

    Label matchers, ranges, grouping clauses and strings are removed first, so label names and
    values (``topic``, ``"karrot-streams"``) are not taken for metrics.
    """
    text = _STRING.sub(" ", expr)
    text = _SELECTOR.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end() :].lstrip()
        word = match.group()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d\w*", word):
            continue
        names.add(word)
    return names


def rule_expressions() -> dict[str, str]:
    """``{alert name: expression}`` of every alert rule."""
    doc = yaml.safe_load(RULES.read_text())
    return {
        rule["alert"]: rule["expr"]
        for group in doc["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def dashboard_expressions() -> list[str]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in doc["panels"] for target in panel.get("targets", [])]
    for variable in doc.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict) and "query" in query:
            # label_values(<selector>, label): the selector's metric must exist too.
            inner = query["query"].removeprefix("label_values(").rsplit(",", 1)[0]
            exprs.append(inner)
    return exprs


def used_metric_names() -> set[str]:
    names: set[str] = set()
    for expr in [*rule_expressions().values(), *dashboard_expressions()]:
        names |= metric_names(expr)
    return names - SYNTHETIC
