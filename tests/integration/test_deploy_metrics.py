"""Every metric the alert rules and the dashboard in ``deploy/`` read, a live worker exports."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.deploy import used_metric_names

#: Series a histogram or counter family exposes besides its own name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": (),
}


def exported_names(text: str) -> set[str]:
    """Names a scrape stores: sample names, and a family's series names even before a sample
    exists (a labelled counter has none until its first increment)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_used_in_deploy_is_exported(worker_url: str) -> None:
    answer = httpx.get(worker_url + "/metrics", timeout=10.0)
    assert answer.status_code == 200
    exported = exported_names(answer.text)
    # The gauges the rules need beyond Faust's own: present with values, not only declared.
    samples = {
        sample.name
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    assert {
        "karrot_last_commit_age_seconds",
        "karrot_tables_recovering",
        "karrot_table_recovery_seconds",
    } <= samples
    used = used_metric_names()
    assert len(used) >= 10
    missing = sorted(used - exported)
    assert not missing, f"not exported by a live worker: {missing}"


def test_dependency_gauges_follow_the_probes(worker_url: str) -> None:
    # The watchdog's probes set them every KARROT_LIVENESS_CHECK_S; the worker is healthy.
    deadline = 30.0
    started = time.monotonic()
    values: dict[str, float] = {}
    while time.monotonic() - started < deadline:
        text = httpx.get(worker_url + "/metrics", timeout=10.0).text
        values = {
            sample.labels["component"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "karrot_dependency_up"
        }
        if len(values) == 3:
            break
        time.sleep(1.0)
    assert values == {"broker": 1.0, "schema_registry": 1.0, "database": 1.0}
