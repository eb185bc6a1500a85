"""Faust's Prometheus monitor, on the project's registry, that also notes when offsets last moved.

Installed as ``app.monitor``: Faust calls ``on_tp_commit`` each time the consumer commits offsets
that advanced, which is the progress the health view checks.
"""

from __future__ import annotations

import time
from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry

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


def install(app: Any, registry: CollectorRegistry) -> CommitMonitor:
    monitor = CommitMonitor(metrics=FaustMetrics.create(registry, METRICS_PREFIX))
    app.monitor = monitor
    return monitor
