"""What every measurement shares: settings, writer schemas, a run id, and a note of the noise."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.options import Options
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import KafkaConnection, kafka_connection
from karrot_streams.events.topics import TopicNames
from karrot_streams.events.types import INPUT_TOPICS, enriched_topic
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings


def other_processes() -> list[str]:
    """Workers and test runs of other people on this machine: they share its two cores."""
    mine = {os.getpid(), os.getppid()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv if a)
        if ("faust" in text and " worker" in text) or "pytest" in text or "quix_peer" in text:
            found.append(f"{entry.name}: {text[:120]}")
    return found


@dataclass
class Bench:
    options: Options
    settings: Settings
    writers: dict[str, WriterSchema]
    enriched_writers: dict[str, WriterSchema]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    own_pids: set[int] = field(default_factory=set)
    noise: list[dict[str, object]] = field(default_factory=list)

    @property
    def bootstrap(self) -> KafkaConnection:
        """The project's one Kafka connection (TLS/SASL as the settings say)."""
        return kafka_connection(self.settings)

    @property
    def dsn(self) -> str:
        return self.settings.database_dsn

    def topics(self, label: str) -> TopicNames:
        """The topics of one measured worker: ``bench.<run id>.<label>.*``, its prefix.

        Passed as ``KARROT_TOPIC_PREFIX``, like the peer's topics: the worker never reads the
        shared input topics, so neither other people's events nor another run's reach it.
        """
        return TopicNames(f"bench.{self.run_id}.{label}.")

    @property
    def logs(self) -> Path:
        return self.options.artifacts / "bench-logs"

    def note_noise(self, phase: str) -> None:
        others = [p for p in other_processes() if int(p.split(":")[0]) not in self.own_pids]
        self.noise.append(
            {"phase": phase, "loadavg_1m": os.getloadavg()[0], "other_processes": others}
        )


@contextlib.asynccontextmanager
async def open_bench(options: Options) -> AsyncIterator[Bench]:
    settings = Settings()
    resources = Resources.create(settings)
    await resources.ready()  # migrations applied, schemas registered, writers known
    try:
        yield Bench(
            options=options,
            settings=settings,
            writers={t: resources.writers[t] for t in INPUT_TOPICS},
            enriched_writers={
                enriched_topic(t): resources.writers[enriched_topic(t)] for t in INPUT_TOPICS
            },
        )
    finally:
        await resources.close()
