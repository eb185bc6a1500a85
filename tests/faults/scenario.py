"""One fault scenario from start to verdict: traffic, the fault, the check, the summary row.

Every scenario runs under a processing guarantee (the worker's ``KARROT_PROCESSING_GUARANTEE``,
the ``guarantee`` fixture). Under ``exactly_once`` the verdict asserts no duplicate and no missing
record in ``enriched.*`` and ``dlq.*`` whatever the fault (read back ``read_committed``); under
``at_least_once`` none missing and the scenario's duplicate bound.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.settings import Settings
from karrot_streams.traffic import Record, TrafficSpec, records
from tests.faults import outcome as checks
from tests.faults.load import CommitWatch, input_ends, produce_through
from tests.faults.outcome import Outcome
from tests.support.truth import Truth, compute


@dataclass(frozen=True)
class Size:
    """How much traffic a scenario sends: the short run for CI, the soak run for ``make soak``."""

    count: int
    rate: float

    @property
    def seconds(self) -> float:
        return self.count / self.rate


SHORT = Size(count=2400, rate=200)
SOAK = Size(count=20000, rate=250)

EXACTLY_ONCE = "exactly_once"
AT_LEAST_ONCE = "at_least_once"
GUARANTEES = (EXACTLY_ONCE, AT_LEAST_ONCE)


def sized(short: Size, soak: Size, *, slow: bool = False) -> list[Any]:
    """``(size, guarantee)`` parameters: the soak size under both guarantees; the short (CI)
    size under both, or, for a ``slow`` scenario (one whose second run would add a minute or
    more to ``make test``), under ``exactly_once`` only (the default guarantee); its
    ``at_least_once`` run is in the soak."""
    short_guarantees = (EXACTLY_ONCE,) if slow else GUARANTEES

    return [pytest.param(short, g, id=f"short-{g}") for g in short_guarantees] + [
        pytest.param(soak, g, id=f"soak-{g}", marks=pytest.mark.soak) for g in GUARANTEES
    ]


#: For a scenario of one size (a few hundred to a thousand events, well under a minute):
#: ``exactly_once`` in CI, ``at_least_once`` too in the soak (``-m soak``), so the CI time of
#: these five scenarios does not double.
BOTH = [
    pytest.param(EXACTLY_ONCE, id=EXACTLY_ONCE),
    pytest.param(AT_LEAST_ONCE, id=AT_LEAST_ONCE, marks=pytest.mark.soak),
]


@dataclass
class Scenario:
    name: str
    settings: Settings
    writers: Mapping[str, WriterSchema]
    group: str
    outcomes: list[Outcome]
    guarantee: str = AT_LEAST_ONCE
    tag: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:6]}-")
    batch: list[Record] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    fault_ended_at: float | None = None
    faults: int = 0
    watch: CommitWatch | None = None
    _producer: asyncio.Task[float] | None = None

    def traffic(
        self, size: Size, *, poison_share: float = 0.05, seed: int = 11, sellers: int = 100
    ) -> list[Record]:
        spec = TrafficSpec(
            count=size.count, poison_share=poison_share, tag=self.tag, seed=seed, sellers=sellers
        )
        return list(records(spec, self.writers))

    def watch_commits(self) -> None:
        self.watch = CommitWatch(self.settings.kafka_bootstrap, self.group)
        self.watch.start()

    def produce(self, batch: list[Record], rate: float) -> asyncio.Task[float]:
        """Start producing ``batch`` in the background; it counts towards the truth."""
        self.batch += batch
        task = asyncio.create_task(produce_through(self.settings.kafka_bootstrap, batch, rate))
        self._producer = task
        return task

    def fault(self) -> None:
        self.faults += 1

    def fault_over(self) -> None:
        self.fault_ended_at = time.monotonic()

    @property
    def truth(self) -> Truth:
        return compute(self.batch, self.settings.fee_rate)

    async def verdict(
        self,
        api_urls: list[str],
        *,
        duplicate_bound: int = 0,
        timeout_s: float = 180.0,
    ) -> Outcome:
        """Check the outcome, add it to the summary, and fail the test on any problem.

        ``duplicate_bound`` is the scenario's at-least-once bound; under exactly_once it is 0.
        """
        if self._producer is not None:
            await self._producer
        if self.guarantee == EXACTLY_ONCE:
            duplicate_bound = 0
        result = Outcome(
            self.name,
            guarantee=self.guarantee,
            duplicate_bound=duplicate_bound,
            faults=self.faults,
        )
        try:
            await checks.check(
                result,
                bootstrap=self.settings.kafka_bootstrap,
                dsn=self.settings.database_dsn,
                tag=self.tag,
                batch=self.batch,
                truth=self.truth,
                api_urls=api_urls,
                timeout_s=timeout_s,
            )
            if self.watch is not None:
                ends = await input_ends(self.settings.kafka_bootstrap)
                if not await self.watch.wait_caught_up(ends, timeout_s=60):
                    result.problems.append("committed offsets did not reach the input's end")
                if self.fault_ended_at is not None:
                    result.recovery_s = self.watch.recovery_after(self.fault_ended_at)
                    if result.recovery_s is None:
                        result.problems.append("no commit after the fault ended")
        finally:
            if self.watch is not None:
                await self.watch.stop()
            result.duration_s = round(time.monotonic() - self.started, 1)
            self.outcomes.append(result)
        assert not result.problems, "\n".join(result.problems)
        return result
