"""What one ``python -m bench`` invocation measures, and how much of it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Section = Literal["raw", "karrot", "split", "peer", "latency", "recovery"]
SECTIONS: tuple[Section, ...] = ("raw", "karrot", "split", "peer", "latency", "recovery")
Guarantee = Literal["at_least_once", "exactly_once"]
GUARANTEES: tuple[Guarantee, ...] = ("at_least_once", "exactly_once")
#: What the worker ships with (settings.py): the main rows of the table are of this guarantee.
SHIPPED: Guarantee = "exactly_once"


@dataclass(frozen=True)
class Variant:
    """One way to run the karrot worker: a processing guarantee and its commit interval.

    ``commit_interval_s`` None leaves the worker's default (0.1 s under exactly_once, 1 s under
    at_least_once, settings.py).
    """

    guarantee: Guarantee
    commit_interval_s: float | None = None

    @property
    def label(self) -> str:
        short = "alo" if self.guarantee == "at_least_once" else "eos"
        return short if self.commit_interval_s is None else f"{short}@{self.commit_interval_s:g}s"

    @property
    def key(self) -> str:
        """The label in topic names and app ids: ``alo``, ``eos``, ``eos250`` (ms)."""
        short = "alo" if self.guarantee == "at_least_once" else "eos"
        if self.commit_interval_s is None:
            return short
        return f"{short}{round(self.commit_interval_s * 1000)}"

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {"KARROT_PROCESSING_GUARANTEE": self.guarantee}
        if self.commit_interval_s is not None:
            env["KARROT_COMMIT_INTERVAL_S"] = f"{self.commit_interval_s:g}"
        return env


@dataclass(frozen=True)
class Options:
    runs: int
    events: int
    latency_seconds: float
    latency_rate: float | None
    recovery_keys: int
    sections: tuple[Section, ...]
    json_path: Path
    artifacts: Path
    profile: bool
    quick: bool
    #: The karrot worker's runs, interleaved within each round (alo, eos, alo, eos, ...).
    variants: tuple[Variant, ...] = (Variant("at_least_once"), Variant("exactly_once"))

    def wants(self, section: Section) -> bool:
        return section in self.sections

    @property
    def main(self) -> Variant:
        """The variant of the main rows, the split layout and the profile: the shipped one."""
        shipped = [v for v in self.variants if v.guarantee == SHIPPED]
        plain = [v for v in shipped if v.commit_interval_s is None]
        return (plain or shipped or list(self.variants))[0]


def _variants(guarantees: str, intervals: str | None) -> tuple[Variant, ...]:
    """Each guarantee at its default interval, then exactly_once at each ``intervals`` (s)."""
    chosen = [g.strip() for g in guarantees.split(",") if g.strip()]
    unknown = [g for g in chosen if g not in GUARANTEES]
    if unknown or not chosen:
        raise ValueError(f"unknown guarantees {unknown}; choose from {GUARANTEES}")
    found: list[Variant] = []
    for g in GUARANTEES:
        if g not in chosen:
            continue
        if g == "exactly_once" and intervals:
            found += [Variant(g, float(i)) for i in intervals.split(",") if i.strip()]
        else:
            found.append(Variant(g))
    if any(v.commit_interval_s is not None and v.commit_interval_s <= 0 for v in found):
        raise ValueError("commit intervals must be above 0")
    return tuple(found)


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput, latency, memory and recovery of karrot-streams, locally.",
    )
    parser.add_argument("--quick", action="store_true", help="one short run of each (< 3 min)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, --quick 1)")
    parser.add_argument("--events", type=int, help="events per throughput run")
    parser.add_argument("--latency-seconds", type=float, help="length of each latency run")
    parser.add_argument(
        "--latency-rate", type=float, help="events/s (default: half the end-to-end rate)"
    )
    parser.add_argument("--recovery-keys", type=int, help="keys in the recovered table")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--json", type=Path, default=Path("artifacts/bench.json"))
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one worker with py-spy during an extra throughput run",
    )
    parser.add_argument(
        "--guarantees",
        default=",".join(GUARANTEES),
        help="karrot worker runs, interleaved in each round: at_least_once,exactly_once",
    )
    parser.add_argument(
        "--eos-commit-intervals",
        help="exactly_once runs at these KARROT_COMMIT_INTERVAL_S (e.g. 0.1,0.25,0.5);"
        " default: the worker's own (0.1 s)",
    )
    args = parser.parse_args(argv)
    try:
        variants = _variants(str(args.guarantees), args.eos_commit_intervals)
    except ValueError as exc:
        parser.error(str(exc))
    quick = bool(args.quick)
    sections = tuple(s.strip() for s in str(args.only).split(",") if s.strip())
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    runs = args.runs if args.runs is not None else (1 if quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")
    json_path: Path = args.json
    return Options(
        runs=runs,
        events=args.events or (8_000 if quick else 60_000),
        latency_seconds=args.latency_seconds or (6.0 if quick else 10.0),
        latency_rate=args.latency_rate,
        recovery_keys=args.recovery_keys or (200_000 if quick else 1_000_000),
        sections=tuple(s for s in SECTIONS if s in sections),
        json_path=json_path,
        artifacts=json_path.parent,
        profile=bool(args.profile),
        quick=quick,
        variants=variants,
    )
