"""One check per component of the health view; each answers UP or DOWN with details, never raises.

Dependencies (broker, registry, database) are asked now, with a short timeout; the pipeline, table
recovery and commit progress are read from what the worker has observed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from karrot_streams.monitoring.commit_monitor import CommitMonitor, readable_end
from karrot_streams.monitoring.health import Health
from karrot_streams.runtime import internals

CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Check:
    up: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": "UP" if self.up else "DOWN", "details": self.details}


async def _within(probe: Awaitable[bool], what: str) -> Check:
    try:
        up = await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except TimeoutError:
        return Check(False, {"error": f"{what}: no answer within {CHECK_TIMEOUT_S:g}s"})
    except Exception as exc:  # noqa: BLE001  a health check reports failures, it does not raise
        return Check(False, {"error": f"{what}: {type(exc).__name__}: {exc}"[:300]})
    return Check(up, {} if up else {"error": f"{what} failed"})


async def broker(app: Any) -> Check:
    """The producer's client refreshes cluster metadata from a broker."""
    try:
        # NotReady until the worker started the producer.
        client = internals.aiokafka_producer(app).client
    except Exception as exc:  # noqa: BLE001
        return Check(False, {"error": f"producer not started: {exc}"[:300]})
    check = await _within(client.force_metadata_update(), "metadata request")
    if check.up:
        check.details["brokers"] = len(client.cluster.brokers())
    return check


async def schema_registry(registry: Any) -> Check:
    return await _within(registry.reachable(), "list subjects")


async def database(store: Any) -> Check:
    return await _within(store.ping(), "SELECT 1")


def pipeline(health: Health, ready: bool) -> Check:
    """DOWN while start-up is unfinished or while the pipeline is waiting out an outage."""
    down = {
        name: state.detail or "unavailable"
        for name, state in health.components.items()
        if not state.up
    }
    details: dict[str, Any] = {"started": ready}
    if down:
        details["waitingFor"] = down
    return Check(ready and not down, details)


def tables(app: Any) -> Check:
    """UP once the tables of the current assignment are recovered from their changelogs."""
    completed = bool(app.tables.recovery.completed.is_set())
    actives_ready = bool(app.tables.actives_ready)
    return Check(
        completed and actives_ready,
        {
            "recoveryCompleted": completed,
            "activesReady": actives_ready,
            "standbysReady": bool(app.tables.standbys_ready),
            "rebalancing": bool(app.rebalancing),
        },
    )


def readiness(app: Any, started: bool) -> dict[str, Check]:
    """What a readiness probe asks, without a network call: start-up done (schemas registered,
    store migrated), the group joined and its assignment taken, the tables of that assignment
    recovered. Dependencies are left out: an outage of one makes every worker wait alike, and
    taking them all out of a Service would only turn waiting requests into refused ones."""
    return {"started": Check(started, {}), "tables": tables(app)}


def commit_progress(
    *,
    now: float,
    started_at: float,
    last_commit_at: float | None,
    highwaters: Mapping[Any, int],
    committed: Mapping[Any, int],
    fetched: Set[Any],
    stall_s: float,
    waiting_since: Mapping[Any, float] | None = None,
    agent_of: Mapping[str, str] | None = None,
) -> Check:
    """DOWN when records wait on assigned partitions and no commit happened for ``stall_s``.

    ``committed`` holds the offsets this worker committed (the next offset to read), so lag is
    ``highwater - committed``; a partition read from but never committed also counts as waiting.
    """
    lag = 0
    uncommitted = 0
    for tp, end in highwaters.items():
        done = committed.get(tp)
        if done is not None:
            lag += max(0, end - done)
        elif tp in fetched and end > 0:
            uncommitted += 1
    since = last_commit_at if last_commit_at is not None else started_at
    age = max(0.0, now - since)
    waiting = lag > 0 or uncommitted > 0
    # Per partition too: one agent stalled while the others commit is stuck all the same.
    stalled = sorted(
        tp for tp, waited_from in (waiting_since or {}).items() if now - waited_from > stall_s
    )
    agents = sorted({(agent_of or {}).get(tp.topic, tp.topic) for tp in stalled})
    return Check(
        not (waiting and age > stall_s) and not stalled,
        {
            "lag": lag,
            "partitionsNeverCommitted": uncommitted,
            "lastCommitAgeSeconds": None if last_commit_at is None else round(age, 1),
            "stallThresholdSeconds": stall_s,
            "assignedPartitions": len(highwaters),
            "stalledPartitions": [f"{tp.topic}:{tp.partition}" for tp in stalled],
            "stalledAgents": agents,
        },
    )


def behind(
    highwaters: Mapping[Any, int], committed: Mapping[Any, int], fetched: Set[Any]
) -> set[Any]:
    """Partitions with records this worker has not committed yet."""
    out = set()
    for tp, end in highwaters.items():
        done = committed.get(tp)
        if (done is not None and end > done) or (done is None and tp in fetched and end > 0):
            out.add(tp)
    return out


def agents_by_topic(app: Any) -> dict[str, str]:
    """Which agent reads each source topic (for naming a stalled partition's agent)."""
    out = {}
    for agent in app.agents.values():
        try:
            topic = agent.channel.get_topic_name()
        except (AttributeError, NotImplementedError):
            continue
        out[topic] = str(agent.name)
    return out


async def commits(app: Any, monitor: CommitMonitor, stall_s: float) -> Check:
    try:
        assignment = app.consumer.assignment()
    except Exception as exc:  # noqa: BLE001  ConsumerNotStarted before the worker runs
        return Check(False, {"error": f"consumer not started: {exc}"[:300]})
    changelogs = app.tables.changelog_topics
    assigned = [tp for tp in assignment if tp.topic not in changelogs]
    known = {tp: end for tp, end in monitor.tp_end_offsets.items() if tp in set(assigned)}
    try:
        fresh = await asyncio.wait_for(app.consumer.highwaters(*assigned), CHECK_TIMEOUT_S)
        highwaters = {tp: int(end) for tp, end in fresh.items() if end is not None}
    except Exception:  # noqa: BLE001  the broker check reports why; use what was last fetched
        highwaters = {tp: int(end) for tp, end in known.items()}
    highwaters = {tp: readable_end(app.consumer, tp, end) for tp, end in highwaters.items()}
    now = time.monotonic()
    committed = monitor.committed_offsets()
    fetched = monitor.fetched_partitions()
    return commit_progress(
        now=now,
        started_at=monitor.started_at,
        last_commit_at=monitor.last_commit_at,
        highwaters=highwaters,
        committed=committed,
        fetched=fetched,
        stall_s=stall_s,
        waiting_since=monitor.waiting_since(behind(highwaters, committed, fetched), now),
        agent_of=agents_by_topic(app),
    )
