"""A step's table writes, on Faust tables over a real RocksDB store (no broker): each value in
the store and in one changelog record with the same bytes, in the key's event's partition, and
the recovery's start offsets moved once the broker has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP

from karrot_streams.runtime import internals
from karrot_streams.runtime.producer import Placed
from karrot_streams.tables import codec
from karrot_streams.tables.declarations import HOUR, HOURLY_EXPIRES
from karrot_streams.tables.writes import ChangelogWrites, TableWrite


class Message:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.tp = TP(topic, partition)


class Event:
    def __init__(self, partition: int, offset: int = 0) -> None:
        self.message = Message("app.facts.items", partition, offset)


class Broker:
    """The placed sender: takes everything, answering offsets from ``first`` per partition;
    each record is written ``copies`` times (a resend of a record the broker had taken)."""

    def __init__(self, first: int = 100, copies: int = 1) -> None:
        self.sent: list[Placed] = []
        self.next: dict[tuple[str, int], int] = {}
        self.first = first
        self.copies = copies
        #: Per partition, (offset, key, value) of every record written, another writer's too.
        self.log: dict[tuple[str, int], list[tuple[int, bytes, bytes | None]]] = {}

    def _append(self, record: Placed) -> int:
        place = (record[0], record[1])
        offset = self.next.get(place, self.first)
        self.next[place] = offset + 1
        self.log.setdefault(place, []).append((offset, record[2], record[3]))
        return offset

    def place_other(self, record: Placed) -> None:
        """A record of another writer, between this worker's."""
        self._append(record)

    def after(self, tp: TP, offset: int | None) -> list[tuple[bytes, bytes | None]]:
        """What a recovery starting after ``offset`` reads of ``tp``."""
        start = -1 if offset is None else offset
        written = self.log.get((tp.topic, tp.partition), [])
        return [(key, value) for at, key, value in written if at > start]

    async def __call__(self, records: list[Placed], acked: dict[tuple[str, int], int]) -> None:
        for record in records:
            self.sent.append(record)
            for _ in range(self.copies):
                acked[record[0], record[1]] = self._append(record)


@pytest.fixture
def app(tmp_path: Path) -> faust.App:
    codec.register()
    return faust.App("test-writes", store="rocksdb://", datadir=str(tmp_path))


def stored(table: Any, key: Any, partition: int) -> Any:
    internals.make_current_event(Event(partition))
    return table[key]


async def test_each_value_is_stored_and_sent_once_with_the_same_bytes(app: faust.App) -> None:
    items = codec.use_for_values(app.Table("items", default=dict, key_type=str, partitions=2))
    broker = Broker()
    writes = ChangelogWrites(app, broker)
    topic = items.changelog_topic.get_topic_name()
    # The store has read each partition's changelog up to the record before the broker's next.
    for partition in (0, 1):
        items.data.set_persisted_offset(TP(topic, partition), 99)
    a = {"item_id": "i1", "category": "디지털기기", "sold_count": 0}
    b = {"item_id": "i2", "category": "도서", "sold_count": 1}
    c = {"item_id": "i3", "category": "도서", "sold_count": 2}
    await writes(
        [
            TableWrite(items, "i1", a, Event(0, 7)),
            TableWrite(items, "i2", b, Event(1, 8)),
            TableWrite(items, "i3", c, Event(1, 9)),
        ]
    )
    assert broker.sent == [
        (topic, 0, codec.key_bytes("i1"), orjson.dumps(a)),
        (topic, 1, codec.key_bytes("i2"), orjson.dumps(b)),
        (topic, 1, codec.key_bytes("i3"), orjson.dumps(c)),
    ]
    # The key bytes are Faust's own (the stdlib's ASCII-escaped JSON), as in the facts topics.
    assert broker.sent[0][2] == b'"i1"'
    assert stored(items, "i1", 0) == a
    assert stored(items, "i3", 1) == c
    # Recovery starts after the last record the broker took, per partition.
    assert items.data.persisted_offset(TP(topic, 0)) == 100
    assert items.data.persisted_offset(TP(topic, 1)) == 101


async def test_a_fresh_store_persists_the_first_records_of_an_empty_changelog(
    app: faust.App,
) -> None:
    sellers = codec.use_for_values(app.Table("sellers", default=dict, key_type=str))
    broker = Broker(first=0)
    writes = ChangelogWrites(app, broker)
    await writes([TableWrite(sellers, "s1", {"n": 1}, Event(0))])
    await writes([TableWrite(sellers, "s2", {"n": 1}, Event(0))])
    assert sellers.data.persisted_offset(TP(sellers.changelog_topic.get_topic_name(), 0)) == 1


async def test_another_writers_records_below_its_own_are_read_at_the_next_recovery(
    app: faust.App, caplog: pytest.LogCaptureFixture
) -> None:
    """The zombie scenario under at-least-once (nothing fences it): the worker's store has read
    the items changelog up to 99 when it freezes; the new owner records a listing at 100; the
    worker resumes and writes its own record at 101. Its next recovery must read 100: moved to
    101, it would start past the listing, keep the item without its category, and hold every
    later sale of the item as one seen before its listing (the soak's short soldCount)."""
    items = codec.use_for_values(app.Table("items", default=dict, key_type=str, partitions=2))
    topic = items.changelog_topic.get_topic_name()
    tp = TP(topic, 1)
    items.data.set_persisted_offset(tp, 99)
    broker = Broker()
    listed = {"item_id": "i1", "category": "도서", "applied": {"item-events:3": 2048}}
    broker.place_other((topic, 1, codec.key_bytes("i1"), orjson.dumps(listed)))  # at 100
    writes = ChangelogWrites(app, broker)
    stale = {"item_id": "i9", "category": None, "applied": {"payment-events:0": 1024}}
    await writes([TableWrite(items, "i9", stale, Event(1))])  # at 101
    start = items.data.persisted_offset(tp)
    assert start == 99
    assert (codec.key_bytes("i1"), orjson.dumps(listed)) in broker.after(tp, start)
    # It stays there while the worker writes on; the next recovery reads the records again.
    await writes([TableWrite(items, "i9", {**stale, "sold_count": 1}, Event(1))])  # at 102
    assert items.data.persisted_offset(tp) == 99
    assert len(broker.after(tp, 99)) == 3
    held_back = [r for r in caplog.records if "has not read after offset 99" in r.getMessage()]
    assert len(held_back) == 1  # once per partition, not per step
    # Partition 0 has no other writer: its start follows the worker's own records.
    items.data.set_persisted_offset(TP(topic, 0), 99)
    await writes([TableWrite(items, "i2", listed, Event(0))])
    await writes([TableWrite(items, "i2", listed, Event(0))])
    assert items.data.persisted_offset(TP(topic, 0)) == 101


async def test_a_copy_of_a_resent_record_keeps_the_recovery_start(app: faust.App) -> None:
    """A record the broker took though its send failed, then sent again: two copies, so the
    step's records do not fill the offsets after the start by themselves."""
    sellers = codec.use_for_values(app.Table("sellers", default=dict, key_type=str))
    tp = TP(sellers.changelog_topic.get_topic_name(), 0)
    sellers.data.set_persisted_offset(tp, 99)
    broker = Broker(copies=2)
    await ChangelogWrites(app, broker)([TableWrite(sellers, "s1", {"n": 1}, Event(0))])
    assert sellers.data.persisted_offset(tp) == 99


async def test_a_windowed_key_is_tracked_for_expiry(app: faust.App) -> None:
    hourly = codec.use_for_values(
        app.Table("category-hourly", default=dict, partitions=2)
        .tumbling(HOUR, expires=HOURLY_EXPIRES)
        .table
    )
    broker = Broker()
    key = ("도서", (3600.0, 7199.9))
    await ChangelogWrites(app, broker)([TableWrite(hourly, key, {"count": 1}, Event(1))])
    assert key in hourly._partition_timestamp_keys[(1, 7199.9)]
    assert stored(hourly, key, 1) == {"count": 1}
    # A windowed key is the JSON list Faust's key codec writes for the tuple.
    assert broker.sent[0][2] == b'["\\ub3c4\\uc11c",[3600.0,7199.9]]'


async def test_nothing_to_write_sends_nothing(app: faust.App) -> None:
    broker = Broker()
    await ChangelogWrites(app, broker)([])
    assert broker.sent == []


class TransactionalApp:
    in_transaction = True


class DictTable(dict[Any, Any]):
    pass


async def test_under_a_transaction_writes_go_through_faust(app: faust.App) -> None:
    """Exactly-once: the changelog records must be sent by the transactional producer."""
    broker = Broker()
    table = DictTable()
    await ChangelogWrites(TransactionalApp(), broker)([TableWrite(table, "k", {"n": 1}, Event(0))])
    assert table == {"k": {"n": 1}}
    assert broker.sent == []
