"""The figures of one bench invocation: a table for people, JSON for tools."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from bench.context import Bench
from bench.cpu import CpuShare
from bench.karrot import KarrotRun
from bench.latency import LatencyRun, Percentiles
from bench.peer import PeerRun
from bench.raw import RawRun
from bench.recovery import RecoveryRun
from bench.stats import Figure

MIB = 1024 * 1024
T = TypeVar("T")


@dataclass
class Results:
    raw: list[RawRun] = field(default_factory=list)
    karrot: list[KarrotRun] = field(default_factory=list)
    #: The split layout: a pipeline process and an aggregates process (KARROT_ROLE).
    split: list[KarrotRun] = field(default_factory=list)
    peer: list[PeerRun] = field(default_factory=list)
    peer_status: str = "not run"
    latency: list[LatencyRun] = field(default_factory=list)
    recovery: list[RecoveryRun] = field(default_factory=list)
    recovery_fill_s: float | None = None
    profile: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: Variant labels in run order; the main rows are of ``main`` (the shipped guarantee).
    variants: list[str] = field(default_factory=list)
    main: str = ""

    def karrot_of(self, variant: str) -> list[KarrotRun]:
        return [r for r in self.karrot if r.variant == variant]

    def latency_of(self, variant: str) -> list[LatencyRun]:
        return [r for r in self.latency if r.variant == variant]


def _fig(runs: Sequence[T], value: Callable[[T], float | None]) -> Figure | None:
    return Figure.of([v for v in map(value, runs) if v is not None])


def per_event(cpu: CpuShare | None, rate: float) -> float | None:
    """CPU microseconds the process under test spent per event: steadier than a rate here."""
    return cpu.process_cores / rate * 1e6 if cpu is not None and rate > 0 else None


def _pct(run: LatencyRun, which: str, p: str) -> float | None:
    found: Percentiles | None = getattr(run, which)
    return None if found is None else float(getattr(found, p))


def variant_figures(results: Results, variant: str) -> dict[str, Figure | None]:
    """Rate, CPU and latency of the karrot worker under one guarantee (and commit interval)."""
    runs, lat = results.karrot_of(variant), results.latency_of(variant)
    out = {
        "events_per_s": _fig(runs, lambda r: r.rate),
        "pipeline_events_per_s": _fig(runs, lambda r: r.pipeline_rate),
        "cpu_us_per_event": _fig(runs, lambda r: per_event(r.cpu, r.rate)),
        "worker_cores": _fig(runs, lambda r: r.cpu.process_cores if r.cpu else None),
        "others_cores": _fig(runs, lambda r: r.cpu.others_cores if r.cpu else None),
        "worker_rss_mib": _fig(runs, lambda r: r.rss_bytes and r.rss_bytes / MIB),
        "latency_rate_events_per_s": _fig(lat, lambda r: r.rate),
        "latency_worker_cores": _fig(lat, lambda r: r.cpu.process_cores if r.cpu else None),
        "latency_cpu_us_per_event": _fig(lat, lambda r: per_event(r.cpu, r.rate)),
        "latency_drift": _fig(lat, lambda r: r.drift),
    }
    for which in ("store", "enriched", "api"):
        for p in ("p50_ms", "p99_ms"):
            out[f"latency_{which}_{p}"] = Figure.of(
                [v for r in lat if (v := _pct(r, which, p)) is not None]
            )
    return out


def _baseline(results: Results) -> str | None:
    """What the ratios divide by: at_least_once at its default interval, if it ran."""
    return "alo" if "alo" in results.variants else None


def variant_ratios(results: Results) -> dict[str, dict[str, float | None]]:
    """Each variant over at_least_once: rate, CPU per event, p99s (medians over medians)."""
    base = _baseline(results)
    if base is None:
        return {}
    bottom = variant_figures(results, base)
    out: dict[str, dict[str, float | None]] = {}
    for variant in results.variants:
        top = variant_figures(results, variant)
        out[variant] = {k: _ratio_of(top.get(k), bottom.get(k)) for k in RATIO_KEYS}
    return out


RATIO_KEYS = (
    "events_per_s",
    "cpu_us_per_event",
    "latency_cpu_us_per_event",
    "latency_enriched_p99_ms",
    "latency_api_p99_ms",
)


def _ratio_of(a: Figure | None, b: Figure | None) -> float | None:
    return a.median / b.median if a is not None and b is not None and b.median else None


def figures(results: Results) -> dict[str, Figure | None]:
    """The main rows: the karrot worker under the shipped guarantee (``results.main``)."""
    if results.main:
        results = replace(
            results,
            karrot=results.karrot_of(results.main),
            latency=results.latency_of(results.main),
        )
    out = {
        "raw_events_per_s": _fig(results.raw, lambda r: r.rate),
        "karrot_events_per_s": _fig(results.karrot, lambda r: r.rate),
        "karrot_pipeline_events_per_s": _fig(results.karrot, lambda r: r.pipeline_rate),
        "split_events_per_s": _fig(results.split, lambda r: r.rate),
        "split_cpu_us_per_event": _fig(results.split, lambda r: per_event(r.cpu, r.rate)),
        "split_cores": _fig(results.split, lambda r: r.cpu.process_cores if r.cpu else None),
        "peer_events_per_s": _fig(results.peer, lambda r: r.rate),
        "worker_rss_mib": _fig(results.karrot, lambda r: r.rss_bytes and r.rss_bytes / MIB),
        "peer_rss_mib": _fig(results.peer, lambda r: r.rss_bytes and r.rss_bytes / MIB),
        "worker_startup_s": _fig(results.karrot, lambda r: r.startup_seconds),
        "raw_cores": _fig(results.raw, lambda r: r.cpu.process_cores if r.cpu else None),
        "karrot_worker_cores": _fig(
            results.karrot, lambda r: r.cpu.process_cores if r.cpu else None
        ),
        "karrot_stack_cores": _fig(results.karrot, lambda r: r.cpu.stack_cores if r.cpu else None),
        "karrot_others_cores": _fig(
            results.karrot, lambda r: r.cpu.others_cores if r.cpu else None
        ),
        "peer_cores": _fig(results.peer, lambda r: r.cpu.process_cores if r.cpu else None),
        "raw_cpu_us_per_event": _fig(results.raw, lambda r: per_event(r.cpu, r.rate)),
        "karrot_cpu_us_per_event": _fig(results.karrot, lambda r: per_event(r.cpu, r.rate)),
        "peer_cpu_us_per_event": _fig(results.peer, lambda r: per_event(r.cpu, r.rate)),
        "latency_drift": _fig(results.latency, lambda r: r.drift),
        "latency_worker_cores": _fig(
            results.latency, lambda r: r.cpu.process_cores if r.cpu else None
        ),
        "latency_rate_events_per_s": _fig(results.latency, lambda r: r.rate),
        "recovery_s": _fig(results.recovery, lambda r: r.seconds),
        "recovery_restore_s": _fig(results.recovery, lambda r: r.restore_seconds),
        "recovery_rss_mib": _fig(results.recovery, lambda r: r.rss_bytes and r.rss_bytes / MIB),
        "recovery_cpu_s": _fig(results.recovery, lambda r: r.cpu_seconds),
    }
    for which in ("store", "enriched", "api"):
        for p in ("p50_ms", "p99_ms"):
            out[f"latency_{which}_{p}"] = Figure.of(
                [v for r in results.latency if (v := _pct(r, which, p)) is not None]
            )
    return out


def _ratio(figs: dict[str, Figure | None], top: str, bottom: str) -> float | None:
    return _ratio_of(figs.get(top), figs.get(bottom))


def ratios(figs: dict[str, Figure | None]) -> dict[str, float | None]:
    return {
        "karrot_to_raw": _ratio(figs, "karrot_events_per_s", "raw_events_per_s"),
        "karrot_pipeline_to_raw": _ratio(figs, "karrot_pipeline_events_per_s", "raw_events_per_s"),
        "peer_to_raw": _ratio(figs, "peer_events_per_s", "raw_events_per_s"),
        "karrot_to_peer": _ratio(figs, "karrot_events_per_s", "peer_events_per_s"),
    }


def _cell(fig: Figure | None, fmt: str) -> tuple[str, str]:
    if fig is None:
        return "-", ""
    return format(fig.median, fmt), f"{format(fig.low, fmt)}-{format(fig.high, fmt)}"


def table(results: Results) -> str:
    figs = figures(results)
    rat = ratios(figs)
    rate = figs["latency_rate_events_per_s"]
    at = f" @ {rate.median:,.0f}/s" if rate else ""
    keys = results.recovery[0].keys if results.recovery else 0

    def pct(r: float | None, what: str) -> str:
        return f"{r:.1%} of {what}" if r is not None else ""

    rows: list[tuple[str, str, str, str]] = []

    def add(label: str, key: str, fmt: str, note: str = "") -> None:
        median, spread = _cell(figs[key], fmt)
        rows.append((label, median, spread, note))

    add("raw limit (aiokafka pass-through), events/s", "raw_events_per_s", ",.0f")
    add(
        "karrot-streams end to end, events/s",
        "karrot_events_per_s",
        ",.0f",
        pct(rat["karrot_to_raw"], "raw"),
    )
    add(
        "  pipeline stage alone (rows + enriched)",
        "karrot_pipeline_events_per_s",
        ",.0f",
        pct(rat["karrot_pipeline_to_raw"], "raw"),
    )
    add("  split layout (pipeline + aggregates processes)", "split_events_per_s", ",.0f")
    add("    its CPU per event (both processes), us", "split_cpu_us_per_event", ",.0f")
    add("    its CPU (both processes), cores", "split_cores", ".2f")
    peer_note = pct(rat["peer_to_raw"], "raw") if results.peer else results.peer_status
    add("Quix Streams peer, events/s", "peer_events_per_s", ",.0f", peer_note)
    if rat["karrot_to_peer"] is not None:
        rows.append(("  karrot-streams / peer", f"{rat['karrot_to_peer']:.2f}x", "", ""))
    for which, label in (
        ("store", "event-store row"),
        ("enriched", "enriched topic"),
        ("api", "API (category stats)"),
    ):
        api_pending = which == "api" and results.latency and results.latency[0].api is None
        note = results.latency[0].api_status if api_pending else ""
        add(f"produce -> {label} p50{at}, ms", f"latency_{which}_p50_ms", ",.0f", note)
        add(f"produce -> {label} p99{at}, ms", f"latency_{which}_p99_ms", ",.0f", note)
    drift = figs["latency_drift"]
    if drift is not None and drift.median > 2:
        rows.append(("  (latency runs fell behind: see drift)", f"{drift.median:.1f}x", "", ""))
    add("  worker CPU during the latency runs, cores", "latency_worker_cores", ".2f")
    add("CPU per event: raw loop, us", "raw_cpu_us_per_event", ",.0f")
    add("CPU per event: karrot worker, us", "karrot_cpu_us_per_event", ",.0f")
    add("CPU per event: peer, us", "peer_cpu_us_per_event", ",.0f")
    add("CPU of the raw loop, cores", "raw_cores", ".2f")
    add("CPU of the karrot worker during its run, cores", "karrot_worker_cores", ".2f")
    add("  CPU of Kafka, registry, PostgreSQL meanwhile", "karrot_stack_cores", ".2f")
    add("  CPU of everything else meanwhile", "karrot_others_cores", ".2f", "of 2 cores")
    add("CPU of the peer during its run, cores", "peer_cores", ".2f")
    add("worker RSS after a throughput run, MiB", "worker_rss_mib", ",.0f")
    add("worker start to ready, empty tables, s", "worker_startup_s", ".1f")
    add(f"recovery of {keys:,} keys: start to ready, s", "recovery_s", ".1f")
    add("  of which reading the changelog, s", "recovery_restore_s", ".1f")
    add("  worker RSS after recovery, MiB", "recovery_rss_mib", ",.0f")
    add("  worker CPU, start to ready, s", "recovery_cpu_s", ".1f")
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("measure", "median", "min-max", "")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths[:3]))
    for label, median, spread, note in rows:
        lines.append(
            f"{label.ljust(widths[0])}  {median.rjust(widths[1])}  {spread.rjust(widths[2])}"
            f"  {note}".rstrip()
        )
    return "\n".join(lines)


def _columns(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(head, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return lines


def guarantee_table(results: Results) -> str:
    """Per guarantee: rate, CPU per event, latency; each over at_least_once."""
    if not results.variants or (not results.karrot and not results.latency):
        return ""
    rat = variant_ratios(results)
    base = _baseline(results)
    specs = (
        ("end to end, events/s", "events_per_s", ",.0f"),
        ("worker CPU per event, us", "cpu_us_per_event", ",.0f"),
        ("worker CPU, cores", "worker_cores", ".2f"),
        ("others' CPU meanwhile, cores", "others_cores", ".2f"),
        ("worker RSS, MiB", "worker_rss_mib", ",.0f"),
        ("latency: worker CPU per event, us", "latency_cpu_us_per_event", ",.0f"),
        ("produce -> row p50, ms", "latency_store_p50_ms", ",.0f"),
        ("produce -> row p99, ms", "latency_store_p99_ms", ",.0f"),
        ("produce -> enriched (read_committed) p50, ms", "latency_enriched_p50_ms", ",.0f"),
        ("produce -> enriched (read_committed) p99, ms", "latency_enriched_p99_ms", ",.0f"),
        ("produce -> API p50, ms", "latency_api_p50_ms", ",.0f"),
        ("produce -> API p99, ms", "latency_api_p99_ms", ",.0f"),
        ("latency drift (last/first fifth)", "latency_drift", ".2f"),
    )
    figs = {v: variant_figures(results, v) for v in results.variants}
    head = ("karrot worker, per guarantee", *(f"{v} median (min-max)" for v in results.variants))
    head += tuple(f"{v}/{base}" for v in results.variants if v != base) if base else ()
    rows: list[tuple[str, ...]] = []
    for label, key, fmt in specs:
        cells = []
        for v in results.variants:
            fig = figs[v][key]
            median, spread = _cell(fig, fmt)
            cells.append(f"{median} ({spread})" if fig is not None else "-")
        if all(c == "-" for c in cells):
            continue
        ratio_cells = []
        if base:
            for v in results.variants:
                if v == base:
                    continue
                r = rat.get(v, {}).get(key) if key in RATIO_KEYS else None
                ratio_cells.append(f"{r:.2f}" if r is not None else "")
        rows.append((label, *cells, *ratio_cells))
    rate = next((f for v in results.variants if (f := figs[v]["latency_rate_events_per_s"])), None)
    note = f"latency at {rate.median:,.0f}/s; " if rate else ""
    runs = len(results.karrot_of(results.variants[0])) or len(
        results.latency_of(results.variants[0])
    )
    lines = _columns(head, rows)
    lines.append(f"({note}{runs} interleaved rounds; the main table above is {results.main})")
    return "\n".join(lines)


def document(bench: Bench, results: Results, started: float) -> dict[str, Any]:
    figs = figures(results)
    return {
        "run_id": bench.run_id,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": {
            k: str(v) if isinstance(v, Path) else v for k, v in asdict(bench.options).items()
        },
        "figures": {k: (v.as_json() if v else None) for k, v in figs.items()},
        "ratios": ratios(figs),
        "main_variant": results.main,
        "variants": {
            v: {k: (f.as_json() if f else None) for k, f in variant_figures(results, v).items()}
            for v in results.variants
        },
        "variant_ratios_to_alo": variant_ratios(results),
        "runs": {
            "raw": [asdict(r) | {"rate": r.rate} for r in results.raw],
            "karrot": [
                asdict(r) | {"rate": r.rate, "pipeline_rate": r.pipeline_rate}
                for r in results.karrot
            ],
            "split": [
                asdict(r) | {"rate": r.rate, "pipeline_rate": r.pipeline_rate}
                for r in results.split
            ],
            "peer": [asdict(r) | {"rate": r.rate} for r in results.peer],
            "latency": [asdict(r) for r in results.latency],
            "recovery": [asdict(r) for r in results.recovery],
        },
        "recovery_fill_s": results.recovery_fill_s,
        "peer_status": results.peer_status,
        "profile": results.profile,
        "noise": bench.noise,
        "notes": results.notes,
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
