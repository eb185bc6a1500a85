"""Drive the Quix Streams peer (bench.quix_peer) over the same records, timed the same way."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import signal
import sys
import time
from asyncio.subprocess import Process
from dataclasses import dataclass
from datetime import datetime

from bench import corpus, kafka_io
from bench.context import Bench
from bench.cpu import CpuShare, CpuWindow
from bench.store_probe import StoreProbe
from bench.worker import rss_bytes
from karrot_streams.events.types import INPUT_TOPICS, enriched_topic

TIMEOUT_S = 600.0
POLL_S = 0.25
PIN = "quixstreams==3.28.1"


@dataclass(frozen=True)
class PeerRun:
    events: int
    seconds: float
    rss_bytes: int | None
    cpu: CpuShare | None
    state_updates: int  # records in the category-count changelog: the state did work

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def available() -> bool:
    return importlib.util.find_spec("quixstreams") is not None


async def _wait_done(
    bench: Bench,
    probe: StoreProbe,
    process: Process,
    group: str,
    prefix: str,
    tag: str,
    since: datetime,
    n: int,
    outputs: list[str],
) -> CpuShare | None:
    deadline = time.monotonic() + TIMEOUT_S
    window: CpuWindow | None = None
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"peer exited with {process.returncode}")
        if window is None:
            produced = await kafka_io.end_offsets(bench.bootstrap, outputs)
            if any(produced.values()):
                window = CpuWindow(process.pid)  # its first enriched record is out
        if await probe.count(tag, since) >= n:
            consumed = [
                t
                for t in await kafka_io.topics_matching(bench.bootstrap, prefix)
                if ".enriched." not in t and not t.startswith("changelog__")
            ]
            if await kafka_io.group_lag(bench.bootstrap, group, consumed) == 0:
                return window.close() if window is not None else None
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"peer {group} not done after {TIMEOUT_S}s")


async def stop(process: Process) -> None:
    """SIGTERM (Quix commits and closes), then SIGKILL if it has not exited within 30 s."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def run(bench: Bench, index: int) -> PeerRun:
    prefix = f"bench.{bench.run_id}.peer{index}"
    group = f"{prefix}.app"
    tag = f"{bench.run_id}p{index}-"
    outputs = [f"{prefix}.{enriched_topic(t)}" for t in INPUT_TOPICS]
    partitions = bench.settings.topic_partitions
    batch = corpus.build(bench.writers, bench.options.events, tag, seed=200 + index)
    state_dir = bench.logs / f"{group}.state"
    log_path = bench.logs / f"{group}.log"
    await kafka_io.create_topics(
        bench.bootstrap, [f"{prefix}.{t}" for t in INPUT_TOPICS], partitions
    )
    # The broker stamps the outputs: Quix copies the input record's timestamp to what it produces.
    await kafka_io.create_topics(
        bench.bootstrap, outputs, partitions, {"message.timestamp.type": "LogAppendTime"}
    )
    process: Process | None = None
    try:
        await corpus.produce_to(bench.bootstrap, batch, lambda t: f"{prefix}.{t}")
        async with StoreProbe.open(bench.dsn) as probe:
            since = await probe.mark()
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.quix_peer",
                    prefix,
                    group,
                    str(state_dir),
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
            bench.own_pids.add(process.pid)
            bench.note_noise(f"peer run {index}")
            cpu = await _wait_done(
                bench, probe, process, group, prefix, tag, since, len(batch), outputs
            )
            rss = rss_bytes(process.pid)
            rows = await probe.times(tag, since)
        enriched = await kafka_io.edge_timestamps(bench.bootstrap, outputs)
        changelogs = await kafka_io.topics_matching(bench.bootstrap, f"changelog__{group}")
        state_updates = sum((await kafka_io.end_offsets(bench.bootstrap, changelogs)).values())
    finally:
        if process is not None:
            await stop(process)
        shutil.rmtree(state_dir, ignore_errors=True)
        await kafka_io.delete_topics(
            bench.bootstrap, await kafka_io.topics_matching(bench.bootstrap, prefix)
        )
    assert rows is not None  # noqa: S101  _wait_done saw them all
    start = min(rows.first, enriched[0] if enriched else rows.first)
    end = max(rows.last, enriched[1] if enriched else rows.last)
    return PeerRun(len(batch), end - start, rss, cpu, state_updates)
