"""The health components computed from what the worker observed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from prometheus_client import CollectorRegistry

from karrot_streams.monitoring.commit_monitor import CommitMonitor
from karrot_streams.monitoring.health import Health
from karrot_streams.monitoring.health_checks import commit_progress, pipeline, readiness, tables

STALL = 120.0


def progress(**changes: Any) -> Any:
    values: dict[str, Any] = {
        "now": 1000.0,
        "started_at": 0.0,
        "last_commit_at": 990.0,
        "highwaters": {"a": 10, "b": 5},
        "committed": {"a": 10, "b": 5},
        "fetched": {"a", "b"},
        "stall_s": STALL,
    }
    values.update(changes)
    return commit_progress(**values)


def test_caught_up_is_up() -> None:
    check = progress()
    assert check.up
    assert check.details["lag"] == 0
    assert check.details["lastCommitAgeSeconds"] == 10.0


def test_lag_with_recent_commit_is_up() -> None:
    check = progress(highwaters={"a": 50, "b": 5})
    assert check.up
    assert check.details["lag"] == 40


def test_lag_without_commit_for_the_stall_time_is_down() -> None:
    check = progress(highwaters={"a": 50, "b": 5}, last_commit_at=1000.0 - STALL - 1)
    assert not check.up
    assert check.details["lag"] == 40


def test_no_lag_and_no_recent_commit_is_idle_not_stalled() -> None:
    assert progress(last_commit_at=0.0).up


def test_never_committed_after_reading_counts_from_start() -> None:
    stalled = progress(committed={}, last_commit_at=None, started_at=1000.0 - STALL - 1)
    assert not stalled.up
    assert stalled.details["partitionsNeverCommitted"] == 2
    assert stalled.details["lastCommitAgeSeconds"] is None
    young = progress(committed={}, last_commit_at=None, started_at=990.0)
    assert young.up


def test_partitions_never_read_are_not_waiting() -> None:
    assert progress(committed={}, fetched=set(), last_commit_at=None).up


def test_pipeline_down_while_starting_or_waiting() -> None:
    health = Health()
    assert not pipeline(health, ready=False).up
    assert pipeline(health, ready=True).up
    health.report("database", False, "Connection refused")
    check = pipeline(health, ready=True)
    assert not check.up
    assert check.details["waitingFor"] == {"database": "Connection refused"}
    health.report("database", True)
    assert pipeline(health, ready=True).up


def fake_app(completed: bool, actives_ready: bool) -> Any:
    event = SimpleNamespace(is_set=lambda: completed)
    return SimpleNamespace(
        tables=SimpleNamespace(
            recovery=SimpleNamespace(completed=event),
            actives_ready=actives_ready,
            standbys_ready=False,
        ),
        rebalancing=not actives_ready,
    )


def test_tables_up_once_recovered_for_the_current_assignment() -> None:
    assert tables(fake_app(completed=True, actives_ready=True)).up
    assert not tables(fake_app(completed=False, actives_ready=False)).up
    rebalancing = tables(fake_app(completed=True, actives_ready=False))
    assert not rebalancing.up
    assert rebalancing.details["rebalancing"] is True


def test_ready_once_started_and_recovered_for_the_current_assignment() -> None:
    def ready(started: bool, completed: bool, actives_ready: bool) -> bool:
        checks = readiness(fake_app(completed, actives_ready), started)
        return all(check.up for check in checks.values())

    assert ready(started=True, completed=True, actives_ready=True)
    assert not ready(started=False, completed=True, actives_ready=True)  # still migrating
    assert not ready(started=True, completed=False, actives_ready=False)  # joining, recovering
    assert not ready(started=True, completed=True, actives_ready=False)  # rebalancing


def test_one_stalled_agent_is_down_while_others_commit() -> None:
    items, facts = TP("item-events", 0), TP("app.facts.items", 0)
    check = commit_progress(
        now=1000.0,
        started_at=0.0,
        last_commit_at=999.0,  # the pipeline commits all the time
        highwaters={items: 10, facts: 50},
        committed={items: 10, facts: 20},
        fetched={items, facts},
        stall_s=STALL,
        waiting_since={facts: 1000.0 - STALL - 1},
        agent_of={"app.facts.items": "aggregate.items"},
    )
    assert not check.up
    assert check.details["stalledPartitions"] == ["app.facts.items:0"]
    assert check.details["stalledAgents"] == ["aggregate.items"]


def test_a_partition_waiting_less_than_the_threshold_is_up() -> None:
    facts = TP("app.facts.items", 0)
    check = progress(
        highwaters={facts: 50}, committed={facts: 20}, waiting_since={facts: 1000.0 - STALL + 1}
    )
    assert check.up
    assert check.details["stalledPartitions"] == []


def test_waiting_since_restarts_when_a_commit_moves() -> None:
    monitor = CommitMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "t"))
    tp = TP("t", 0)
    assert monitor.waiting_since({tp}, 100.0) == {tp: 100.0}
    assert monitor.waiting_since({tp}, 200.0) == {tp: 100.0}
    monitor._moved_at[tp] = 150.0  # as on_tp_commit records it
    assert monitor.waiting_since({tp}, 210.0) == {tp: 150.0}
    assert monitor.waiting_since(set(), 220.0) == {}
    assert monitor.waiting_since({tp}, 230.0) == {tp: 230.0}  # caught up in between
