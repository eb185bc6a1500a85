"""The stats view's pure parts: counter totals per topic, and lag per partition."""

from __future__ import annotations

from faust.types import TP
from prometheus_client import CollectorRegistry

from karrot_streams.events.topics import TopicNames
from karrot_streams.monitoring.metrics import Metrics
from karrot_streams.store.status_counts import StatusCounts
from karrot_streams.web.stats_views import (
    counter_breakdown,
    counter_totals,
    partition_lag,
    store_counts_json,
    topic_stats,
)


def test_counters_are_summed_per_topic_with_their_reasons() -> None:
    metrics = Metrics.create(CollectorRegistry())
    metrics.processed.labels("item-events").inc(5)
    metrics.processed.labels("chat-events").inc()
    metrics.dead_lettered.labels("item-events", "InvalidEvent").inc(2)
    metrics.dead_lettered.labels("item-events", "UndecodableMessage").inc()

    stats = topic_stats(
        counter_totals(metrics.processed, "topic"),
        counter_totals(metrics.dead_lettered, "topic"),
        counter_breakdown(metrics.dead_lettered, "topic", "reason"),
    )

    assert list(stats) == ["user-events", "item-events", "payment-events", "chat-events"]
    assert stats["item-events"] == {
        "processed": 5,
        "deadLettered": 3,
        "deadLetteredByReason": {"InvalidEvent": 2, "UndecodableMessage": 1},
    }
    assert stats["chat-events"]["processed"] == 1
    assert stats["user-events"] == {"processed": 0, "deadLettered": 0, "deadLetteredByReason": {}}


def test_lag_is_highwater_minus_committed_sorted_by_position() -> None:
    rows = partition_lag(
        {TP("b", 0): 10, TP("a", 1): 7, TP("a", 0): 3},
        {TP("a", 0): 3, TP("a", 1): 2, TP("b", 0): None},
    )
    assert rows == [
        {"topic": "a", "partition": 0, "highwater": 3, "committed": 3, "lag": 0},
        {"topic": "a", "partition": 1, "highwater": 7, "committed": 2, "lag": 5},
        # Nothing committed yet: the lag is unknown, not the whole partition.
        {"topic": "b", "partition": 0, "highwater": 10, "committed": None, "lag": None},
    ]


def test_a_commit_past_a_stale_highwater_is_no_negative_lag() -> None:
    assert partition_lag({TP("a", 0): 4}, {TP("a", 0): 6})[0]["lag"] == 0


def test_store_counts_come_from_the_cache_with_their_age() -> None:
    cache = StatusCounts("postgresql://unused")
    assert store_counts_json(cache) == {"counts": None, "sampledAt": None, "error": None}
    cache.counts = {"PROCESSED": 7, "FAILED": 1}
    cache.sampled_at = 1_800_000_000.0
    assert store_counts_json(cache) == {
        "counts": {"CREATED": 0, "PUBLISHED": 0, "PROCESSED": 7, "FAILED": 1},
        "sampledAt": "2027-01-15T08:00:00.000Z",
    }
    # A failed refresh keeps the last counts and says why they are old.
    cache.error = "OperationalError: down"
    assert store_counts_json(cache)["error"] == "OperationalError: down"
    assert store_counts_json(cache)["counts"]["PROCESSED"] == 7


def test_lag_under_a_prefix_names_topics_logically() -> None:
    rows = partition_lag(
        {TP("p1.item-events", 0): 5, TP("p1.app.facts.items", 0): 2, TP("elsewhere", 0): 1},
        {},
        TopicNames("p1."),
    )
    assert [row["topic"] for row in rows] == ["elsewhere", "app.facts.items", "item-events"]
