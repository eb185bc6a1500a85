"""The gauges and counters a scrape computes from what the worker holds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.exceptions import ConsumerNotStarted
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from karrot_streams.monitoring.commit_monitor import WorkerCollector, install
from karrot_streams.runtime.transactions import WorkerTransactions
from tests.support.collector import idle_app


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


def test_commit_times_are_a_histogram_per_phase_under_exactly_once() -> None:
    transactions = WorkerTransactions(exactly_once=True)
    for seconds in (0.002, 0.03, 0.03, 0.7):
        transactions.timings.end.observe(seconds)
    transactions.timings.steps.observe(0.06)
    app = idle_app()
    app.transactions = transactions
    monitor = install(SimpleNamespace(), CollectorRegistry())
    found = samples(list(WorkerCollector(app, monitor).collect()))
    end = (("phase", "end"),)
    assert found[("karrot_transaction_commit_seconds_bucket", (("le", "0.005"), *end))] == 1
    assert found[("karrot_transaction_commit_seconds_bucket", (("le", "0.05"), *end))] == 3
    assert found[("karrot_transaction_commit_seconds_bucket", (("le", "0.5"), *end))] == 3
    assert found[("karrot_transaction_commit_seconds_bucket", (("le", "+Inf"), *end))] == 4
    assert found[("karrot_transaction_commit_seconds_count", end)] == 4
    assert abs(found[("karrot_transaction_commit_seconds_sum", end)] - 0.762) < 1e-9
    steps = (("phase", "steps"),)
    assert found[("karrot_transaction_commit_seconds_bucket", (("le", "0.05"), *steps))] == 0
    assert found[("karrot_transaction_commit_seconds_bucket", (("le", "0.1"), *steps))] == 1


def test_no_commit_times_under_at_least_once() -> None:
    app = idle_app()
    monitor = install(SimpleNamespace(), CollectorRegistry())
    names = {name for name, _ in samples(list(WorkerCollector(app, monitor).collect()))}
    assert not any(name.startswith("karrot_transaction_commit") for name in names)
