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
    """The placed sender: takes everything, answering offsets from 100 per partition."""

    def __init__(self) -> None:
        self.sent: list[Placed] = []
        self.next: dict[tuple[str, int], int] = {}

    async def __call__(self, records: list[Placed], acked: dict[tuple[str, int], int]) -> None:
        for record in records:
            self.sent.append(record)
            place = (record[0], record[1])
            offset = self.next.get(place, 100)
            self.next[place] = offset + 1
            acked[place] = offset


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
    topic = items.changelog_topic.get_topic_name()
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
