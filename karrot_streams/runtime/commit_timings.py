"""Where a transaction's commit spends its time: a histogram per part, kept by hand so the
worker's collector (monitoring/commit_monitor.py) can export it on scrape without a registry
here."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Upper bounds of the commit-time buckets (s): around the 0.1 s commit interval.
COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Timings:
    """A histogram kept by hand (what a collector exports on scrape, without a registry here):
    per upper bound, how many took at most that long."""

    buckets: tuple[float, ...] = COMMIT_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(COMMIT_BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        self.count += 1
        for n, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[n] += 1


@dataclass
class CommitTimings:
    """Where a commit's time goes, which bounds how soon a ``read_committed`` reader sees a
    record: waiting for the steps inside to end (the gate), the offsets, the EndTxn (with the
    producer's flush before it)."""

    steps: Timings = field(default_factory=Timings)
    offsets: Timings = field(default_factory=Timings)
    end: Timings = field(default_factory=Timings)

    def phases(self) -> dict[str, Timings]:
        return {"steps": self.steps, "offsets": self.offsets, "end": self.end}
