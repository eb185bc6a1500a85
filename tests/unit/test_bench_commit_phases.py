"""The bench's reading of the worker's commit-time histogram (what bounds exactly-once
latency), from a scrape made by the worker's own collector."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from bench.latency import commit_phases
from karrot_streams.monitoring.commit_monitor import install
from karrot_streams.runtime.transactions import WorkerTransactions
from tests.support.collector import idle_app


def scrape(transactions: WorkerTransactions) -> str:
    app = idle_app()
    app.transactions = transactions
    registry = CollectorRegistry()
    install(app, registry)  # the worker's collector, on its registry
    return generate_latest(registry).decode()


def test_means_and_p99_bounds_per_phase() -> None:
    transactions = WorkerTransactions(exactly_once=True)
    for _ in range(99):
        transactions.timings.end.observe(0.02)
    transactions.timings.end.observe(0.4)
    transactions.timings.offsets.observe(0.003)
    phases = commit_phases(scrape(transactions))
    assert set(phases) == {"end", "offsets"}  # no step waited: no row for it
    end = phases["end"]
    assert end.commits == 100
    assert abs(end.mean_ms - (99 * 20 + 400) / 100) < 1e-6
    assert end.p99_under_ms == 25.0  # 99 of 100 ended within the 25 ms bucket
    assert phases["offsets"].p99_under_ms == 5.0


def test_nothing_without_the_histogram() -> None:
    assert commit_phases(scrape(WorkerTransactions(exactly_once=False))) == {}
