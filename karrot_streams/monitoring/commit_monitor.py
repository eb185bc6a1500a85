"""Faust's Prometheus monitor, on the project's registry, that also notes when offsets last moved.

Installed as ``app.monitor``: Faust calls ``on_tp_commit`` each time the consumer commits offsets
that advanced, which is the progress the health view checks. ``WorkerCollector`` turns the same
observations into gauges at scrape time (commit age, lag, table recovery), which the alert rules
in ``deploy/`` use: Faust's own gauges hold only what its per-record hooks (trimmed below) set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from karrot_streams.runtime import internals
from karrot_streams.runtime.commit_timings import CommitTimings
from karrot_streams.runtime.transactions import transactions_of

#: Faust's metrics are named ``faust_*`` whatever the app id, so dashboards survive a rename.
METRICS_PREFIX = "faust"


class CommitMonitor(PrometheusMonitor):
    def __init__(self, metrics: Any, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self.started_at = time.monotonic()
        self.last_commit_at: float | None = None
        #: When each partition's committed offset last moved.
        self._moved_at: dict[Any, float] = {}
        #: Since when each partition has had records waiting without its commit moving.
        self._waiting: dict[Any, float] = {}
        #: When the current (or last) rebalance began: table recovery follows it.
        self.rebalance_started_at = self.started_at

    def on_tp_commit(self, tp_offsets: Any) -> None:
        super().on_tp_commit(tp_offsets)
        if tp_offsets:
            now = self.last_commit_at = time.monotonic()
            for tp in tp_offsets:
                self._moved_at[tp] = now

    def waiting_since(self, behind: set[Any], now: float) -> dict[Any, float]:
        """For each partition in ``behind``: since when it has waited without progress.

        A partition that catches up, or whose commit moves, starts again from that moment.
        """
        for tp in [tp for tp in self._waiting if tp not in behind]:
            del self._waiting[tp]
        for tp in behind:
            since = self._waiting.setdefault(tp, now)
            moved = self._moved_at.get(tp)
            if moved is not None and moved > since:
                self._waiting[tp] = moved
        return {tp: self._waiting[tp] for tp in behind}

    def on_rebalance_start(self, app: Any) -> dict[Any, Any]:
        self.rebalance_started_at = time.monotonic()
        return dict(super().on_rebalance_start(app))

    # Faust's per-record sensor hooks cost about a sixth of a worker's CPU (bench/, py-spy). The
    # health and lag views need only the end offset seen per partition and the commits.
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self.track_tp_end_offset(tp, offset)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_batch_in(self, topic: str, offsets: dict[Any, int], count: int) -> None:
        """Faust's standard message and event counters, fed a batch at a time.

        ``offsets`` is the highest offset taken per partition of ``topic``; ``count`` the
        batch's events.
        """
        metrics = self._metrics
        metrics.messages_received.inc(count)
        metrics.total_events.inc(count)
        metrics.total_events_per_stream.labels(stream=f"stream.{topic}.events").inc(count)
        metrics.messages_received_per_topics.labels(topic=topic).inc(count)
        for tp, offset in offsets.items():
            metrics.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            ).set(offset)
        self.messages_received_total += count
        self.events_total += count

    def committed_offsets(self) -> dict[Any, int]:
        return dict(self.tp_committed_offsets)

    def fetched_partitions(self) -> set[Any]:
        """Partitions this worker has read records from since it started."""
        return set(self.tp_end_offsets)


class WorkerCollector(Collector):
    """Gauges computed when ``/metrics`` is scraped, from what the worker already holds in memory.

    Nothing here waits on I/O: the highwaters are the ones the consumer's fetches last returned.
    """

    def __init__(self, app: Any, monitor: CommitMonitor) -> None:
        self._app = app
        self._monitor = monitor

    def describe(self) -> list[Any]:
        # Empty: registering must not call collect() before the app has a consumer.
        return []

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        monitor = self._monitor
        since = monitor.last_commit_at if monitor.last_commit_at is not None else monitor.started_at
        age = GaugeMetricFamily(
            "karrot_last_commit_age_seconds",
            "Seconds since this worker last committed advancing offsets (since start if never).",
        )
        age.add_metric([], max(0.0, now - since))
        yield age
        lag = GaugeMetricFamily(
            "karrot_consumer_lag",
            "Records not yet committed per assigned partition (highwater minus committed offset).",
            labels=["topic", "partition"],
        )
        for (topic, partition), value in sorted(self._lag().items()):
            lag.add_metric([topic, str(partition)], value)
        yield lag
        recovering = self._recovering()
        flag = GaugeMetricFamily(
            "karrot_tables_recovering",
            "1 while the tables of the current assignment are being restored from changelogs.",
        )
        flag.add_metric([], 1.0 if recovering else 0.0)
        yield flag
        took = GaugeMetricFamily(
            "karrot_table_recovery_seconds",
            "Seconds the current table recovery has taken so far (0 when none runs).",
        )
        took.add_metric([], max(0.0, now - monitor.rebalance_started_at) if recovering else 0.0)
        yield took
        recovery = self._app.tables.recovery
        read = CounterMetricFamily(
            "karrot_changelog_records_read",
            "Changelog records applied to the tables since start: recovery of the active"
            " partitions, and the standbys' copies.",
            labels=["replica"],
        )
        read.add_metric(["active"], getattr(recovery, "active_records_read", 0))
        read.add_metric(["standby"], getattr(recovery, "standby_records_read", 0))
        yield read
        rebalances = CounterMetricFamily(
            "karrot_rebalances", "Rebalances of the group this worker took part in since start."
        )
        rebalances.add_metric([], self._app.rebalancing_count)
        yield rebalances
        transactions = transactions_of(self._app)
        if transactions.exactly_once:
            yield self._commit_times(transactions.timings)

    @staticmethod
    def _commit_times(timings: CommitTimings) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "karrot_transaction_commit_seconds",
            "Time of each part of a transaction's commit: steps (waiting for the steps inside"
            " to end), offsets (sending the input offsets), end (the producer's flush and"
            " EndTxn).",
            labels=["phase"],
        )
        for phase, times in timings.phases().items():
            buckets: list[tuple[str, float]] = [
                (f"{b:g}", c) for b, c in zip(times.buckets, times.counts, strict=True)
            ]
            buckets.append(("+Inf", times.count))
            family.add_metric([phase], buckets, times.total)
        return family

    def _lag(self) -> dict[tuple[str, int], float]:
        try:
            consumer = self._app.consumer
            assignment = consumer.assignment()
        except ConsumerNotStarted:
            return {}
        changelogs = self._changelogs()
        out: dict[tuple[str, int], float] = {}
        # What the group had committed when the partition was assigned, updated by this
        # worker's own commits.
        committed: dict[Any, int | None] = dict(internals.committed_at_assignment(consumer))
        committed.update(self._monitor.committed_offsets())
        for tp in assignment:
            if tp.topic in changelogs:
                continue
            try:
                end = consumer.highwater(tp)
            except (IllegalStateError, ConsumerNotStarted, AssertionError):
                continue  # revoked since assignment() answered, or not fetched yet
            done = committed.get(tp)
            if end is None or done is None:
                continue  # nothing known yet: no number rather than a wrong one
            end = readable_end(consumer, tp, int(end))
            out[(tp.topic, tp.partition)] = float(max(0, end - int(done)))
        return out

    def _changelogs(self) -> set[str]:
        return set(self._app.tables.changelog_topics)

    def _recovering(self) -> bool:
        tables = self._app.tables
        return not (tables.recovery.completed.is_set() and tables.actives_ready)


def readable_end(consumer: Any, tp: Any, end: int) -> int:
    """What of ``end`` a commit can reach (transaction markers left out: runtime/consumer.py's
    ``readable_end``); ``end`` itself with a consumer that cannot tell."""
    reach = getattr(consumer, "readable_end", None)
    if reach is None:
        return end
    try:
        return int(reach(tp, end))
    except (IllegalStateError, ConsumerNotStarted, AssertionError):
        return end


def install(app: Any, registry: CollectorRegistry) -> CommitMonitor:
    monitor = CommitMonitor(metrics=FaustMetrics.create(registry, METRICS_PREFIX))
    app.monitor = monitor
    registry.register(WorkerCollector(app, monitor))
    return monitor
