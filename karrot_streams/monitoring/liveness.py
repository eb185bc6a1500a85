"""The liveness watchdog: a stuck worker stops with a non-zero exit code instead of idling.

A worker is *stuck* when

* an agent (pipeline or aggregate) has no running actor: its task ended or died for good; or
* its commits stopped: records wait on its partitions and nothing was committed for
  ``commit_stall_s``, while every dependency answers its probe (broker metadata, registry
  subjects, database ``SELECT 1``).

An outage pauses the stream on purpose (the health view says which dependency is DOWN): that is
not stuck, and neither are start-up, a rebalance or table recovery. A hung query, a lock wait, a
deadlock or a wedged agent with every dependency up is, even when the pipeline reports that it is
waiting for the database or the registry: a query that times out on a lock looks like an outage
from inside the batch, but the probe, which answers, tells the two apart. (Kafka refusing the
pipeline's writes while its metadata answers counts as an outage: a restart would not help.)

Stuck for longer than ``liveness_grace_s``, the watchdog logs why and crashes the app, so
``faust worker`` exits with status 1 and a supervisor (systemd ``Restart=on-failure``,
Kubernetes) starts it again; the un-acked batch is read again.
Should the clean shutdown itself hang, a backstop ends the process with status 70.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from karrot_streams.monitoring import health_checks
from karrot_streams.monitoring.commit_monitor import CommitMonitor
from karrot_streams.runtime import internals

log = logging.getLogger(__name__)

#: Exit status when the clean shutdown after a liveness failure does not finish in time.
EXIT_STUCK = 70
SHUTDOWN_DEADLINE_S = 60.0


class WorkerStuck(RuntimeError):
    """The worker made no progress for longer than its grace period."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What one look at the worker found."""

    dead_agents: tuple[str, ...] = ()
    commits_stalled: bool = False
    commit_details: dict[str, Any] = field(default_factory=dict)
    #: Dependencies that do not answer their probe: an outage, waited out on purpose.
    outages: tuple[str, ...] = ()
    #: What the pipeline reports it is waiting for (a timeout inside a batch, say).
    waiting: tuple[str, ...] = ()
    #: Starting, rebalancing or recovering tables: progress is not expected yet.
    settling: bool = False

    def reasons(self) -> list[str]:
        """Why the worker is stuck; empty when it is not."""
        out = [f"agent {name} has no running actor" for name in self.dead_agents]
        if self.commits_stalled and not self.outages and not self.settling:
            waiting = f"; the pipeline waits for {', '.join(self.waiting)}" if self.waiting else ""
            out.append(
                f"commits stalled with every dependency answering{waiting}: {self.commit_details}"
            )
        return out


@dataclass
class Watchdog:
    """Turns observations into a decision: stuck for longer than ``grace_s`` means stop."""

    grace_s: float
    stuck_since: float | None = None
    last_reasons: list[str] = field(default_factory=list)

    def observe(self, now: float, reasons: Sequence[str]) -> bool:
        """Record a look at the worker; True once it has been stuck for the whole grace period."""
        if not reasons:
            if self.stuck_since is not None:
                log.info("Liveness: the worker is making progress again")
            self.stuck_since = None
            self.last_reasons = []
            return False
        if self.stuck_since is None:
            self.stuck_since = now
            log.warning("Liveness: stuck (%s); stopping in %.0fs", "; ".join(reasons), self.grace_s)
        self.last_reasons = list(reasons)
        return now - self.stuck_since >= self.grace_s


def dead_agents(app: Any) -> list[str]:
    """Agents that were started and have no actor whose task still runs."""
    dead = []
    for name, agent in app.agents.items():
        if not agent.started or agent.should_stop:
            continue
        actors = internals.agent_actors(agent)
        if not any(a.actor_task is not None and not a.actor_task.done() for a in actors):
            dead.append(str(name))
    return sorted(dead)


async def observe(app: Any, stall_s: float) -> Observation:
    resources = app.resources
    monitor = app.monitor
    settling = (
        not resources.is_ready
        or bool(app.rebalancing)
        or not app.tables.recovery.completed.is_set()
    )
    waiting = tuple(name for name, state in resources.health.components.items() if not state.up)
    broker, registry, database = await asyncio.gather(
        health_checks.broker(app),
        health_checks.schema_registry(resources.registry),
        health_checks.database(resources.store),
    )
    probes = (("broker", broker), ("schema_registry", registry), ("database", database))
    for name, check in probes:
        # The alert rules' "dependency down" reads this, refreshed on every look.
        resources.metrics.dependency_up.labels(name).set(1.0 if check.up else 0.0)
    down = tuple(name for name, check in probes if not check.up)
    # Kafka refusing writes (too few in-sync replicas, a partition without a leader) while its
    # metadata answers is still a broker outage: a restart of this worker would not fix it.
    down += tuple(name for name in waiting if name == "kafka")
    stalled = False
    details: dict[str, Any] = {}
    if isinstance(monitor, CommitMonitor):
        commits = await health_checks.commits(app, monitor, stall_s)
        stalled = not commits.up and "error" not in commits.details
        details = commits.details
    return Observation(
        dead_agents=tuple(dead_agents(app)),
        commits_stalled=stalled,
        commit_details=details,
        outages=down,
        waiting=waiting,
        settling=settling,
    )


def _backstop(deadline_s: float) -> None:
    """End the process if the clean shutdown hangs (a daemon thread: nothing else can)."""

    def end() -> None:
        log.critical("Liveness: shutdown did not finish in %.0fs; exiting now", deadline_s)
        os._exit(EXIT_STUCK)

    timer = threading.Timer(deadline_s, end)
    timer.daemon = True
    timer.start()


def register(app: Any) -> Watchdog:
    """Run the watchdog as a Faust timer of ``app`` (a KarrotApp)."""
    settings = app.resources.settings
    watchdog = Watchdog(grace_s=settings.liveness_grace_s)

    @app.timer(settings.liveness_check_s)  # type: ignore[untyped-decorator]
    async def liveness() -> None:
        observation = await observe(app, settings.commit_stall_s)
        if not watchdog.observe(time.monotonic(), observation.reasons()):
            return
        reason = "; ".join(watchdog.last_reasons)
        if not settings.liveness_exit:
            log.error("Liveness: stuck (%s); not stopping: KARROT_LIVENESS_EXIT=false", reason)
            return
        log.critical(
            "Liveness: stuck for over %.0fs, stopping the worker: %s", watchdog.grace_s, reason
        )
        _backstop(SHUTDOWN_DEADLINE_S)
        await app.crash(WorkerStuck(reason))

    return watchdog
