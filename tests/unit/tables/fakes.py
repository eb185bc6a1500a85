"""Stand-ins for the Faust side of the aggregate stages: events, tables, a crash-prone journal.

A stage sets the current event before each table call (``in_partition_of``) so Faust reads,
stores and changelogs the key in that event's partition. :class:`FakeTable` takes the partition
the same way, from Faust's current event (``faust.current_event()``), so a test sees which
partition each call landed in, and a crash can lose the writes of one partition's changelog and
not another's.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import orjson
from faust.windows import TumblingWindow

from karrot_streams.tables.declarations import DAY, HOUR, Tables
from karrot_streams.tables.facts import CategoryEffectFact, ItemFact, SoldFact, table_key

PARTITIONS = 2


def partition_of(key: bytes) -> int:
    """Where a keyed record goes: any stable hash does, as long as tables and topics agree."""
    return zlib.crc32(key) % PARTITIONS


class Crash(Exception):
    """The worker dies here: nothing after this call happens."""


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset


class FakeEvent:
    """What a stage gets from the batch runtime: raw key and value, and the message's place."""

    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: bytes) -> None:
        self.key = key
        self.value = value
        self.message = FakeMessage(topic, partition, offset)
        self.acked = False

    def ack(self) -> bool:
        self.acked = True
        return True


def fact_event(topic: str, offset: int, key: str, value: Mapping[str, object]) -> FakeEvent:
    raw_key = table_key(key)
    return FakeEvent(topic, partition_of(raw_key), offset, raw_key, orjson.dumps(value))


# What ``batched`` hands a stage: each event with its value's JSON. That JSON is the encoding of
# the fact kind the stage reads (tables/facts.py); the casts name the kind without checking it,
# as the stages' own BatchStep takes decoded JSON unchecked.


def item_facts(events: Iterable[FakeEvent]) -> list[tuple[Any, ItemFact]]:
    return [(event, cast(ItemFact, orjson.loads(event.value))) for event in events]


def sale_facts(events: Iterable[FakeEvent]) -> list[tuple[Any, SoldFact]]:
    return [(event, cast(SoldFact, orjson.loads(event.value))) for event in events]


def category_effects(events: Iterable[FakeEvent]) -> list[tuple[Any, CategoryEffectFact]]:
    return [(event, cast(CategoryEffectFact, orjson.loads(event.value))) for event in events]


@dataclass
class Fuse:
    """Counts table writes and sends; blows (raises Crash, before the call) when it reaches 0."""

    remaining: int | None = None

    def tick(self) -> None:
        if self.remaining is None:
            return
        if self.remaining == 0:
            self.remaining = None
            raise Crash
        self.remaining -= 1


@dataclass
class Journal:
    """Table writes not yet flushed, per (table, partition) changelog, oldest first.

    A commit flushes (Faust flushes its producer before it commits): what is flushed survives
    a crash. Unflushed writes of one changelog partition survive as a prefix, if at all.
    """

    fuse: Fuse = field(default_factory=Fuse)
    entries: list[tuple[FakeTable, int, Any, dict[str, Any] | None]] = field(default_factory=list)

    def flush(self) -> None:
        self.entries.clear()

    def crash(self, kept: dict[tuple[str, int], int]) -> None:
        """Lose the unflushed writes past ``kept[(table, partition)]`` (default: keep none)."""
        seen: dict[tuple[str, int], int] = {}
        survivors = []
        for entry in self.entries:
            table, partition, _, _ = entry
            n = seen[table.name, partition] = seen.get((table.name, partition), 0) + 1
            survivors.append(n <= kept.get((table.name, partition), 0))
        for entry, survives in reversed(list(zip(self.entries, survivors, strict=True))):
            if not survives:
                table, _, key, before = entry
                table.restore(key, before)
        self.entries.clear()


class FakeTable:
    """A Faust table with ``default=dict``: missing keys read as {}; every call records the
    partition of the current event, and writes go through the journal."""

    def __init__(self, name: str, journal: Journal, window_size: float | None = None) -> None:
        self.name = name
        self.journal = journal
        self.data: dict[Any, dict[str, Any]] = {}
        self.partitions: list[tuple[str, Any, int]] = []
        if window_size is not None:
            self.window = TumblingWindow(window_size, expires=window_size * 400)

    def _partition(self) -> int:
        event: Any = faust.current_event()
        assert event is not None, f"{self.name}: table call without a current event"
        partition: int = event.message.partition
        return partition

    def __getitem__(self, key: Any) -> dict[str, Any]:
        self.partitions.append(("read", key, self._partition()))
        return self.data.get(key, {})

    def __setitem__(self, key: Any, value: dict[str, Any]) -> None:
        partition = self._partition()
        self.journal.fuse.tick()
        self.partitions.append(("write", key, partition))
        self.journal.entries.append((self, partition, key, self.data.get(key)))
        # As the changelog does: the table keeps the value's encoding, not the caller's object.
        self.data[key] = orjson.loads(orjson.dumps(value))

    def restore(self, key: Any, before: dict[str, Any] | None) -> None:
        if before is None:
            self.data.pop(key, None)
        else:
            self.data[key] = before

    def writes(self) -> list[tuple[Any, int]]:
        return [(key, p) for op, key, p in self.partitions if op == "write"]


def fake_tables(journal: Journal) -> Tables:
    return Tables(
        items=FakeTable("items", journal),
        categories=FakeTable("categories", journal),
        category_hourly=FakeTable("category-hourly", journal, HOUR),
        sellers=FakeTable("sellers", journal),
        payment_daily=FakeTable("payment-volume-daily", journal, DAY),
        users_daily=FakeTable("new-users-daily", journal, DAY),
    )


def values(tables: Tables) -> dict[str, dict[Any, dict[str, Any]]]:
    out: dict[str, dict[Any, dict[str, Any]]] = {}
    for table in vars(tables).values():
        assert isinstance(table, FakeTable)
        out[table.name] = dict(table.data)
    return out
