"""deploy/: the alert rules pass `promtool check rules` and their `promtool test rules` tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import (
    RULE_TESTS,
    RULES,
    dashboard_expressions,
    metric_names,
    rule_expressions,
    used_metric_names,
)

ALERTS = {
    "KarrotWorkerDown",
    "KarrotCommitsStalled",
    "KarrotConsumerLagGrowing",
    "KarrotDeadLetterRateHigh",
    "KarrotDependencyDown",
    "KarrotTableRecoveryTooLong",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: `make promtool` installs Debian's prometheus package")
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_checks_the_rules() -> None:
    result = run("check", "rules", RULES.name, cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    assert set(rule_expressions()) == ALERTS
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == ALERTS
    assert quiet == ALERTS


@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        ("KarrotTableRecoveryTooLong", "> 600", "> 6000"),
        ("KarrotDeadLetterRateHigh", "[5m])) > 1", "[5m])) > 5"),
        ("KarrotDependencyDown", "for: 1m", "for: 10m"),
    ],
)
def test_the_unit_tests_catch_a_weakened_rule(
    tmp_path: Path, alert: str, old: str, new: str
) -> None:
    text = RULES.read_text()
    assert text.count(old) == 1, old
    (tmp_path / RULES.name).write_text(text.replace(old, new))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = run("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def test_metric_names_leave_out_labels_functions_and_keywords() -> None:
    expr = (
        'sum by (job, topic) (rate(karrot_events_dead_lettered_total{job="karrot-streams"}[5m]))'
        " > 1 and on (job) deriv(sum by (job) (karrot_consumer_lag)[10m:1m]) > 0"
        " or histogram_quantile(0.99, sum by (le) (rate(faust_producer_send_latency_bucket[5m])))"
    )
    assert metric_names(expr) == {
        "karrot_events_dead_lettered_total",
        "karrot_consumer_lag",
        "faust_producer_send_latency_bucket",
    }


def test_the_dashboard_and_rules_read_karrot_and_faust_metrics() -> None:
    assert len(dashboard_expressions()) >= 10
    names = used_metric_names()
    assert "up" not in names
    assert {"karrot_consumer_lag", "karrot_dependency_up", "karrot_table_recovery_seconds"} <= names
    assert all(name.startswith(("karrot_", "faust_")) for name in names), names
