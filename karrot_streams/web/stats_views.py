"""``GET /api/v1/monitoring/stats``: this worker's counters, its consumer lag, event-store counts.

The event-store counts come from a cache a timer refreshes on a connection of its own
(store/status_counts.py), so polling this open view never queries the database.

What the operator console polls. The counters are this worker's since it started (the same
Prometheus counters as ``/metrics``), so a client computes rates from two answers. Lag is per
assigned partition (table changelogs left out): the highwater minus the offset committed.
Open like the rest of ``/api/v1/monitoring``: only counts, no event data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from karrot_streams.events.timestamps import iso_epoch
from karrot_streams.events.topics import TopicNames
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.monitoring.commit_monitor import CommitMonitor
from karrot_streams.runtime import internals
from karrot_streams.store.event_store import Status
from karrot_streams.store.status_counts import StatusCounts
from karrot_streams.web.http import models
from karrot_streams.web.http.operations import Answer, Operation, declare
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView

log = logging.getLogger(__name__)

STATS_TIMEOUT_S = 3.0
#: Faust's own leader-election topic: assigned, never read, so never lagging.
LEADER_TOPIC_SUFFIX = "__assignor-__leader"


def counter_totals(counter: Counter, label: str) -> dict[str, float]:
    """A labelled counter's totals summed by one of its labels."""
    totals: dict[str, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "")
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def counter_breakdown(counter: Counter, label: str, by: str) -> dict[str, dict[str, int]]:
    """``{label value: {by value: count}}`` of a counter with two labels."""
    out: dict[str, dict[str, int]] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                inner = out.setdefault(sample.labels.get(label, ""), {})
                inner[sample.labels.get(by, "")] = int(sample.value)
    return out


def topic_stats(
    processed: Mapping[str, float],
    dead_lettered: Mapping[str, float],
    reasons: Mapping[str, Mapping[str, int]],
    topics: Iterable[str] = INPUT_TOPICS,
) -> dict[str, dict[str, Any]]:
    """Per input topic: events processed and dead-lettered, with the reasons, zero when none."""
    return {
        topic: {
            "processed": int(processed.get(topic, 0)),
            "deadLettered": int(dead_lettered.get(topic, 0)),
            "deadLetteredByReason": dict(reasons.get(topic, {})),
        }
        for topic in topics
    }


def partition_lag(
    highwaters: Mapping[Any, int],
    committed: Mapping[Any, int | None],
    names: TopicNames | None = None,
) -> list[dict[str, Any]]:
    """One row per partition, sorted; ``lag`` is None while nothing is known to be committed.

    Topics are shown by their logical names, as everywhere in the API.
    """
    names = names or TopicNames()
    rows = []
    for tp in sorted(highwaters, key=lambda tp: (tp.topic, tp.partition)):
        end = highwaters[tp]
        done = committed.get(tp)
        rows.append(
            {
                "topic": names.logical(tp.topic) if tp.topic.startswith(names.prefix) else tp.topic,
                "partition": tp.partition,
                "highwater": end,
                "committed": done,
                "lag": None if done is None else max(0, end - done),
            }
        )
    return rows


def committed_offsets(app: Any, monitor: object) -> dict[Any, int | None]:
    """What this worker committed, else what the group had committed when it was assigned."""
    known: dict[Any, int | None] = dict(internals.committed_at_assignment(app.consumer))
    if isinstance(monitor, CommitMonitor):
        known.update(monitor.committed_offsets())
    return known


async def consumer_lag(app: Any, names: TopicNames | None = None) -> list[dict[str, Any]]:
    try:
        assignment = app.consumer.assignment()
    except Exception:  # noqa: BLE001  ConsumerNotStarted before the worker runs
        return []
    changelogs = app.tables.changelog_topics
    assigned = [
        tp
        for tp in assignment
        if tp.topic not in changelogs and not tp.topic.endswith(LEADER_TOPIC_SUFFIX)
    ]
    try:
        fresh = await asyncio.wait_for(app.consumer.highwaters(*assigned), STATS_TIMEOUT_S)
        highwaters = {tp: int(end) for tp, end in fresh.items() if end is not None}
    except Exception:  # noqa: BLE001  the health view reports a broker outage; use what is known
        ends = getattr(app.monitor, "tp_end_offsets", None) or {}
        highwaters = {tp: int(end) for tp, end in ends.items() if tp in set(assigned)}
    return partition_lag(highwaters, committed_offsets(app, app.monitor), names)


def store_counts_json(cache: StatusCounts | None) -> dict[str, Any]:
    """The cached counts with the moment they were taken (never a query of this request)."""
    if cache is None or cache.counts is None:
        return {"counts": None, "sampledAt": None, "error": None if cache is None else cache.error}
    out: dict[str, Any] = {
        "counts": {status.value: cache.counts.get(status.value, 0) for status in Status},
        "sampledAt": None if cache.sampled_at is None else iso_epoch(cache.sampled_at),
    }
    if cache.error is not None:
        out["error"] = cache.error  # the last refresh failed: these counts are older
    return out


async def store_counts(cache: StatusCounts | None) -> dict[str, Any]:
    if cache is not None:
        try:
            # Only before the timer's first sample; later calls never wait for the database.
            await asyncio.wait_for(cache.first(), STATS_TIMEOUT_S)
        except TimeoutError:
            log.debug("Event-store counts not sampled yet")
    return store_counts_json(cache)


class StatsView(ApiView):
    """``{sampledAt, worker, topics: {<topic>: {processed, ...}}, lag: [...], eventStore}``."""

    operations = declare(
        get=Operation(
            "This worker's counters, consumer lag and event-store counts (open)",
            {200: Answer("Counters", models.Stats)},
            open=True,
        )
    )

    async def get(self, request: web.Request) -> web.StreamResponse:
        app = self.karrot
        resources = self.resources
        metrics = resources.metrics
        lag, store = await asyncio.gather(
            consumer_lag(app, resources.topics.names), store_counts(resources.status_counts)
        )
        monitor = app.monitor
        started = monitor.started_at if isinstance(monitor, CommitMonitor) else None
        return json_response(
            {
                "sampledAt": iso_epoch(time.time()),
                "worker": {
                    "appId": resources.settings.app_id,
                    "url": str(app.conf.canonical_url),
                    "uptimeSeconds": None
                    if started is None
                    else round(time.monotonic() - started, 1),
                },
                "topics": topic_stats(
                    counter_totals(metrics.processed, "topic"),
                    counter_totals(metrics.dead_lettered, "topic"),
                    counter_breakdown(metrics.dead_lettered, "topic", "reason"),
                ),
                "lag": lag,
                "eventStore": store,
            }
        )
