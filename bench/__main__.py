"""``python -m bench``: raw limit, karrot-streams, the Quix peer, latency, memory, recovery."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import time

from bench import karrot, latency, peer, profiling, raw, recovery, report
from bench.context import Bench, open_bench
from bench.options import Options, parse

FALLBACK_LATENCY_RATE = 500.0


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


async def _throughput(bench: Bench, results: report.Results) -> None:
    """Rounds of raw, karrot, peer: each round sees about the same load from other processes."""
    options = bench.options
    with_peer = options.wants("peer") and peer.available()
    if options.wants("peer") and not with_peer:
        results.peer_status = f"pending: pip install {peer.PIN}"
        say(f"peer skipped: quixstreams is not installed ({peer.PIN})")
    elif with_peer:
        results.peer_status = "measured"
    for i in range(options.runs):
        progress = f"{i + 1}/{options.runs}"
        if options.wants("raw"):
            results.raw.append(await raw.run(bench, i, bench.writers))
            say(f"raw {progress}: {results.raw[-1].rate:,.0f} events/s")
        if options.wants("karrot"):
            for variant in options.variants:  # alo, eos, ...: each round sees them all
                run = await karrot.run(bench, i, variant=variant)
                results.karrot.append(run)
                say(
                    f"karrot {variant.label} {progress}: {run.rate:,.0f} events/s end to end,"
                    f" {run.pipeline_rate:,.0f} events/s pipeline stage,"
                    f" {report.per_event(run.cpu, run.rate) or 0:,.0f} us CPU/event"
                )
        if options.wants("split"):
            run = await karrot.run(bench, i, layout="split")
            results.split.append(run)
            say(f"split {progress}: {run.rate:,.0f} events/s end to end (pipeline + aggregates)")
        if with_peer:
            results.peer.append(await peer.run(bench, i))
            say(f"peer {progress}: {results.peer[-1].rate:,.0f} events/s")


async def _latency(bench: Bench, results: report.Results) -> None:
    options = bench.options
    main = [r.rate for r in results.karrot if r.variant == options.main.label]
    if options.latency_rate:
        rate = options.latency_rate
    elif main:
        rate = 0.5 * statistics.median(main)
    else:
        rate = FALLBACK_LATENCY_RATE
        results.notes.append(f"latency at a fixed {rate:.0f}/s: karrot throughput not measured")
    for i in range(options.runs):
        for variant in options.variants:  # the same rate for each, interleaved
            results.latency.append(await latency.run(bench, i, rate, variant))
            run = results.latency[-1]

            def pair(p: latency.Percentiles | None) -> str:
                return f"{p.p50_ms:.0f}/{p.p99_ms:.0f} ms" if p else "-"

            api = pair(run.api) if run.api else run.api_status
            say(
                f"latency {variant.label} {i + 1}/{options.runs} @ {rate:,.0f}/s: p50/p99"
                f" row {pair(run.store)}, enriched (read_committed) {pair(run.enriched)}, API {api}"
            )
            if run.commits:
                say(
                    f"  {next(iter(run.commits.values())).commits} commits, mean / p99 under: "
                    + ", ".join(
                        f"{phase} {c.mean_ms:.1f} / {c.p99_under_ms or float('inf'):g} ms"
                        for phase, c in run.commits.items()
                    )
                )


async def _recovery(bench: Bench, results: report.Results) -> None:
    filled, runs = await recovery.run(bench)
    results.recovery_fill_s, results.recovery = filled, runs
    for run in runs:
        check = "read back" if run.verified else "NOT read back"
        cpu = f"{run.cpu_seconds:.1f}s CPU" if run.cpu_seconds is not None else "CPU unknown"
        say(f"recovery of {run.keys:,} keys: ready after {run.seconds:.1f}s ({cpu}), a key {check}")


async def _profile(bench: Bench, results: report.Results) -> None:
    if not profiling.available():
        results.notes.append("profile skipped: py-spy not on PATH (pip install py-spy)")
        return
    out = bench.options.artifacts / "profile.collapsed.txt"
    run = await karrot.run(bench, 99, attach=profiling.attach_to(out))
    results.profile = {"run_rate": run.rate, "collapsed_stacks": str(out)}
    results.profile |= profiling.summarise(out)
    say(f"profile: {out} ({results.profile.get('samples', 0)} samples)")


async def main(options: Options) -> int:
    started = time.time()
    results = report.Results(variants=[v.label for v in options.variants], main=options.main.label)
    async with open_bench(options) as bench:
        bench.logs.mkdir(parents=True, exist_ok=True)
        say(f"run {bench.run_id}: {options.events:,} events x {options.runs} runs")
        say(f"karrot worker under {', '.join(v.label for v in options.variants)}, interleaved")
        say(f"worker logs in {bench.logs}")
        await _throughput(bench, results)
        if options.wants("latency"):
            await _latency(bench, results)
        if options.wants("recovery"):
            await _recovery(bench, results)
        if options.profile:
            await _profile(bench, results)
        doc = report.document(bench, results, started)
    report.write(options.json_path, doc)
    print(report.table(results))
    if guarantees := report.guarantee_table(results):
        print(f"\n{guarantees}")
    print(f"\nJSON: {options.json_path}  ({doc['duration_s']:.0f}s)")
    for data_dir in bench.logs.glob("*.data"):
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
