"""The bench's guarantee variants (bench/options.py) and its per-guarantee table."""

from __future__ import annotations

import pytest

from bench.cpu import CpuShare
from bench.karrot import KarrotRun
from bench.options import Variant, parse
from bench.report import Results, figures, guarantee_table, variant_ratios


def test_both_guarantees_by_default_the_shipped_one_is_main() -> None:
    options = parse([])
    assert [v.label for v in options.variants] == ["alo", "eos"]
    assert options.main == Variant("exactly_once")
    assert options.events == 60_000


def test_commit_intervals_make_one_exactly_once_run_each() -> None:
    options = parse(["--eos-commit-intervals", "0.1,0.25,0.5"])
    assert [v.label for v in options.variants] == ["alo", "eos@0.1s", "eos@0.25s", "eos@0.5s"]
    assert [v.key for v in options.variants] == ["alo", "eos100", "eos250", "eos500"]
    assert options.variants[2].env() == {
        "KARROT_PROCESSING_GUARANTEE": "exactly_once",
        "KARROT_COMMIT_INTERVAL_S": "0.25",
    }
    assert options.main.label == "eos@0.1s"
    assert parse(["--guarantees", "at_least_once"]).main == Variant("at_least_once")


def test_unknown_guarantee_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse(["--guarantees", "exactly_twice"])


def _run(variant: str, seconds: float, cores: float) -> KarrotRun:
    cpu = CpuShare(wall_s=seconds, process_cores=cores, stack_cores=0.3, others_cores=0.0)
    return KarrotRun(1000, seconds, seconds, 1.0, None, cpu, variant)


def test_main_rows_are_the_shipped_guarantee_and_ratios_divide_by_alo() -> None:
    results = Results(variants=["alo", "eos"], main="eos")
    results.karrot = [_run("alo", 1.0, 0.8), _run("eos", 2.0, 0.5)]
    main = figures(results)["karrot_events_per_s"]
    assert main is not None and main.median == 500
    ratios = variant_ratios(results)["eos"]
    assert ratios["events_per_s"] == 0.5
    assert ratios["cpu_us_per_event"] == pytest.approx(1.25)  # 1000 us against 800 us
    assert "eos/alo" in guarantee_table(results)
