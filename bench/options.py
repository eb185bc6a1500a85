"""What one ``python -m bench`` invocation measures, and how much of it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Section = Literal["raw", "karrot", "split", "peer", "latency", "recovery"]
SECTIONS: tuple[Section, ...] = ("raw", "karrot", "split", "peer", "latency", "recovery")


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

    def wants(self, section: Section) -> bool:
        return section in self.sections


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
    args = parser.parse_args(argv)
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
        events=args.events or (8_000 if quick else 100_000),
        latency_seconds=args.latency_seconds or (8.0 if quick else 20.0),
        latency_rate=args.latency_rate,
        recovery_keys=args.recovery_keys or (200_000 if quick else 1_000_000),
        sections=tuple(s for s in SECTIONS if s in sections),
        json_path=json_path,
        artifacts=json_path.parent,
        profile=bool(args.profile),
        quick=quick,
    )
