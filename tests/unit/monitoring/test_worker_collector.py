"""The gauges and counters a scrape computes from what the worker holds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.exceptions import ConsumerNotStarted
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from karrot_streams.monitoring.commit_monitor import WorkerCollector, install


class NoConsumer:
    def assignment(self) -> Any:
        raise ConsumerNotStarted()


def samples(families: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def test_changelog_records_read_and_rebalances_are_counted() -> None:
    completed = SimpleNamespace(is_set=lambda: True)
    recovery = SimpleNamespace(
        completed=completed, active_records_read=120, standby_records_read=30
    )
    app: Any = SimpleNamespace(
        consumer=NoConsumer(),
        tables=SimpleNamespace(recovery=recovery, actives_ready=True, changelog_topics=set()),
        rebalancing_count=2,
    )
    monitor = install(SimpleNamespace(), CollectorRegistry())
    found = samples(list(WorkerCollector(app, monitor).collect()))
    assert found[("karrot_changelog_records_read_total", (("replica", "active"),))] == 120
    assert found[("karrot_changelog_records_read_total", (("replica", "standby"),))] == 30
    assert found[("karrot_rebalances_total", ())] == 2
    assert found[("karrot_tables_recovering", ())] == 0
