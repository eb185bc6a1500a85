"""Sample one worker with py-spy during a throughput run and say where its CPU time goes.

py-spy writes collapsed stacks (``frame;frame;... count``), readable by flamegraph.pl,
inferno or speedscope. Each sample is charged to the innermost frame that belongs to a known
area (so json called by the event store counts as json), which splits the time exclusively.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.worker import Worker

RATE_HZ = 100

#: Areas, innermost match wins; matched against each frame's "(file:line)" part.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("json encode/decode", ("json/", "faust/utils/json", "orjson")),
    # fastavro is compiled: py-spy charges its time to the calling frame in avro/codec.py.
    ("avro decode/encode (fastavro)", ("fastavro/", "karrot_streams/avro/")),
    ("validation", ("karrot_streams/events/validation", "karrot_streams/events/model")),
    ("enrichment", ("karrot_streams/events/enrichment",)),
    ("event store (aiopg, psycopg2)", ("aiopg/", "psycopg2/", "karrot_streams/store/")),
    ("metrics (prometheus)", ("prometheus_client/", "faust/sensors/")),
    ("logging", ("logging/",)),
    (
        "tables: rocksdb and aggregates",
        ("rocksdict", "faust/stores/", "faust/tables/", "karrot_streams/tables/"),
    ),
    ("kafka producer", ("aiokafka/producer/", "faust/transport/producer", "aiokafka/record/")),
    (
        "kafka consumer and fetch",
        (
            "aiokafka/consumer/",
            "faust/transport/consumer",
            "faust/transport/drivers/",
            "aiokafka/conn",
            "aiokafka/protocol",
            "aiokafka/client",
        ),
    ),
    ("faust streams, agents, topics", ("faust/", "mode/")),
    ("web (aiohttp)", ("aiohttp/",)),
    ("pipeline glue (karrot_streams)", ("karrot_streams/",)),
    ("asyncio event loop", ("asyncio/", "selectors", "uvloop")),
)
STAGES: tuple[tuple[str, str], ...] = (
    ("pipeline agents (decode..emit)", "karrot_streams/pipeline/agents.py"),
    ("aggregate agents", "karrot_streams/tables/agents.py"),
)
_FILE = re.compile(r"\(([^()]*):\d+\)$")

Stop = Callable[[], Awaitable[None]]


def executable() -> str | None:
    """py-spy on PATH, or beside this interpreter (a virtualenv's bin/)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def available() -> bool:
    return executable() is not None


def attach_to(out: Path) -> Callable[[Worker], Awaitable[Stop]]:
    """An ``attach`` for bench.karrot.run: py-spy from the first row to the end of the run."""

    async def attach(worker: Worker) -> Stop:
        command = [
            executable() or "py-spy",
            "record",
            "--pid",
            str(worker.pid),
            "--rate",
            str(RATE_HZ),
        ]
        command += ["--format", "raw", "--nonblocking", "-o", str(out)]
        spy = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )

        async def stop() -> None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                await asyncio.wait_for(spy.wait(), 20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    spy.kill()
                await spy.wait()

        return stop

    return attach


def _area(frame: str) -> str | None:
    match = _FILE.search(frame)
    path = match.group(1) if match else frame
    for area, needles in AREAS:
        if any(n in path for n in needles):
            return area
    return None


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    areas: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaves[frames[-1]] += count
        area = next((a for f in reversed(frames) if (a := _area(f)) is not None), "other")
        areas[area] += count
        for stage, needle in STAGES:
            if needle in stack:
                stages[stage] += count
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str], n: int | None = None) -> list[dict[str, Any]]:
        return [{"name": k, "share": v / total} for k, v in counter.most_common(n)]

    return {
        "samples": total,
        "seconds_on_cpu": total / RATE_HZ,
        "areas": share(areas),
        "stages_inclusive": share(stages),
        "top_functions_self": share(leaves, top),
    }
