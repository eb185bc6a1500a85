"""The table store under exactly-once: a step's writes wait in a buffer its reads see, go into
RocksDB with their changelog offsets in one batch when the transaction commits, and are gone
when it aborts. Faust tables over real RocksDB databases; a fake transactional producer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import pytest
import rocksdict
from faust.streams import _current_event
from faust.types import TP

from karrot_streams.runtime import internals, transactional_store
from karrot_streams.runtime.transactional_store import TransactionalStore
from karrot_streams.runtime.transactions import TransactionFailed, WorkerTransactions
from karrot_streams.tables import codec
from karrot_streams.tables.declarations import HOUR, HOURLY_EXPIRES
from karrot_streams.tables.writes import ChangelogWrites, TableWrite
from tests.unit.tables.test_changelog_writes import Broker, Event

PARTITIONS = 2


class Producer:
    """What the worker's transactions ask of aiokafka's transactional producer."""

    def __init__(self) -> None:
        self._txn_manager = None
        self.journal: list[str] = []

    async def begin_transaction(self) -> None:
        self.journal.append("begin")

    async def commit_transaction(self) -> None:
        self.journal.append("commit")

    async def abort_transaction(self) -> None:
        self.journal.append("abort")


class RecordingDB:
    """A partition's database, with the batches written to it."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.batches: list[int] = []

    def write(self, batch: Any) -> None:
        self.batches.append(batch.len())
        self.db.write(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def make_app(tmp_path: Path, *, exactly_once: bool = True) -> Any:
    codec.register()
    transactional_store.register()
    app: Any = faust.App(
        "test-store", store=f"{transactional_store.SCHEME}://", datadir=str(tmp_path)
    )
    app.transactions = WorkerTransactions(exactly_once=exactly_once, transactional_id="tx")
    app.failures = []

    async def on_failure(exc: TransactionFailed) -> None:
        app.failures.append(exc)

    app.transactions.bind(lambda: app.producer_fake, on_failure)
    app.producer_fake = Producer()
    return app


def sellers_of(app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    table = codec.use_for_values(
        app.Table("sellers", default=dict, key_type=str, partitions=PARTITIONS)
    )
    topic = table.changelog_topic.get_topic_name()
    actives = {TP(topic, p) for p in range(PARTITIONS)}
    monkeypatch.setattr(app.assignor, "assigned_actives", lambda: actives)
    return table


@pytest.fixture
def app(tmp_path: Path) -> Any:
    return make_app(tmp_path)


@pytest.fixture
def sellers(app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    return sellers_of(app, monkeypatch)


@pytest.fixture
def broker() -> Broker:
    return Broker()


def no_event() -> None:
    """What a view or Faust's expiry timer reads with: no current event."""
    _current_event.set(None)


def read(table: Any, key: str, partition: int) -> Any:
    event = Event(partition)  # held: the current event is a weak reference
    internals.make_current_event(event)
    return table[key]


def on_disk(table: Any, key: str, partition: int) -> bytes | None:
    db = table.data._db_for_partition(partition)
    value: bytes | None = db.get(codec.key_bytes(key))
    return value


def persisted(table: Any, partition: int) -> int | None:
    tp = TP(table.changelog_topic.get_topic_name(), partition)
    offset: int | None = table.data.persisted_offset(tp)
    return offset


async def commit(app: Any) -> None:
    async with app.transactions.exclusive():
        await app.transactions.commit({}, None)


def test_the_app_store_url_names_the_transactional_store(sellers: Any) -> None:
    assert isinstance(sellers.data, TransactionalStore)


async def test_a_step_reads_its_own_writes_before_they_reach_rocksdb(
    app: Any, sellers: Any, broker: Broker
) -> None:
    value = {"seller_id": "s1", "sales": 1}
    async with app.transactions.step():
        await ChangelogWrites(app, broker)([TableWrite(sellers, "s1", value, Event(1, 7))])
        assert read(sellers, "s1", 1) == value
    # The step is over, the transaction is not: reads see the value, RocksDB does not hold it.
    assert read(sellers, "s1", 1) == value
    assert "s1" in sellers
    no_event()
    assert sellers.data["s1"] == value
    assert dict(sellers.data.items()) == {"s1": value}
    assert list(sellers.data.keys()) == ["s1"]
    assert len(sellers.data) == 1
    assert on_disk(sellers, "s1", 1) is None
    assert persisted(sellers, 1) is None
    assert sellers.data.pending_writes() == 1


async def test_the_commit_writes_values_and_offsets_in_one_batch_per_partition(
    app: Any, sellers: Any, broker: Broker
) -> None:
    store = sellers.data
    dbs = {p: RecordingDB(store._db_for_partition(p)) for p in range(PARTITIONS)}
    store._dbs.update(dbs)
    async with app.transactions.step():
        await ChangelogWrites(app, broker)(
            [
                TableWrite(sellers, "s1", {"n": 1}, Event(0)),
                TableWrite(sellers, "s2", {"n": 2}, Event(1)),
                TableWrite(sellers, "s3", {"n": 3}, Event(1)),
            ]
        )
    assert all(not db.batches for db in dbs.values())
    await commit(app)
    # One batch per partition: its values and its persisted offset (the last changelog record).
    assert dbs[0].batches == [2]
    assert dbs[1].batches == [3]
    assert (persisted(sellers, 0), persisted(sellers, 1)) == (100, 101)
    assert on_disk(sellers, "s3", 1) == b'{"n":3}'
    assert store.pending_writes() == 0
    assert read(sellers, "s2", 1) == {"n": 2}
    assert app.producer_fake.journal == ["begin", "commit"]


async def test_a_crash_before_the_commit_leaves_rocksdb_at_its_last_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: Broker
) -> None:
    first = make_app(tmp_path)
    sellers = sellers_of(first, monkeypatch)
    async with first.transactions.step():
        await ChangelogWrites(first, broker)([TableWrite(sellers, "s1", {"n": 1}, Event(0))])
    await commit(first)
    async with first.transactions.step():
        await ChangelogWrites(first, broker)([TableWrite(sellers, "s1", {"n": 2}, Event(0))])
    # The process dies with the second transaction open: its databases are closed, reopened.
    for db in sellers.data._dbs.values():
        db.close()
    again = sellers_of(make_app(tmp_path), monkeypatch)
    assert read(again, "s1", 0) == {"n": 1}
    assert persisted(again, 0) == 100  # recovery reads the changelog after the first commit


async def test_an_abort_drops_the_writes_and_refuses_more(
    app: Any, sellers: Any, broker: Broker
) -> None:
    async with app.transactions.step():
        await ChangelogWrites(app, broker)([TableWrite(sellers, "s1", {"n": 1}, Event(0))])
    await app.transactions.fail(TransactionFailed("fenced"))
    assert app.producer_fake.journal == ["begin"]  # the fake has no state to abort from
    assert sellers.data.pending_writes() == 0
    assert read(sellers, "s1", 0) == {}
    assert persisted(sellers, 0) is None
    event = Event(0)
    internals.make_current_event(event)
    with pytest.raises(TransactionFailed):
        sellers.data["s1"] = {"n": 2}


async def test_at_least_once_writes_go_straight_into_rocksdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: Broker
) -> None:
    app = make_app(tmp_path, exactly_once=False)
    sellers = sellers_of(app, monkeypatch)
    # The store has read its changelog up to the record before the broker's next offset.
    sellers.data.set_persisted_offset(TP(sellers.changelog_topic.get_topic_name(), 0), 99)
    await ChangelogWrites(app, broker)([TableWrite(sellers, "s1", {"n": 1}, Event(0))])
    assert on_disk(sellers, "s1", 0) == b'{"n":1}'
    assert persisted(sellers, 0) == 100


async def test_recovery_writes_go_straight_into_rocksdb_while_a_transaction_is_open(
    app: Any, sellers: Any, broker: Broker
) -> None:
    class Message:
        def __init__(self, partition: int, offset: int, key: bytes, value: bytes) -> None:
            self.tp = TP(sellers.changelog_topic.get_topic_name(), partition)
            self.partition, self.offset, self.key, self.value = partition, offset, key, value

    class Record:
        def __init__(self, message: Message) -> None:
            self.message = message

    async with app.transactions.step():
        await ChangelogWrites(app, broker)([TableWrite(sellers, "s1", {"n": 1}, Event(0))])
        # A standby partition's changelog, applied by the recovery meanwhile.
        sellers.data.apply_changelog_batch(
            [Record(Message(1, 40, codec.key_bytes("s9"), b'{"n":9}'))], None, None
        )
    assert on_disk(sellers, "s9", 1) == b'{"n":9}'
    assert persisted(sellers, 1) == 40
    assert on_disk(sellers, "s1", 0) is None


async def test_a_revoked_partition_drops_what_it_buffers(
    app: Any, sellers: Any, broker: Broker
) -> None:
    async with app.transactions.step():
        await ChangelogWrites(app, broker)(
            [
                TableWrite(sellers, "s1", {"n": 1}, Event(0)),
                TableWrite(sellers, "s2", {"n": 2}, Event(1)),
            ]
        )
    topic = sellers.changelog_topic.get_topic_name()
    sellers.data.revoke_partitions(sellers, {TP(topic, 1)})
    await commit(app)
    assert on_disk(sellers, "s1", 0) == b'{"n":1}'
    assert 1 not in sellers.data._dbs  # not opened again by the flush
    assert persisted(sellers, 1) is None


async def test_an_expired_window_deleted_inside_a_transaction_is_deleted_at_its_commit(
    app: Any, broker: Broker
) -> None:
    hourly = codec.use_for_values(
        app.Table("category-hourly", default=dict, partitions=PARTITIONS)
        .tumbling(HOUR, expires=HOURLY_EXPIRES)
        .table
    )
    key = ("도서", (3600.0, 7199.9))
    await ChangelogWrites(app, broker)([TableWrite(hourly, key, {"count": 1}, Event(1))])
    encoded = hourly.data._encode_key(key)
    assert hourly.data._db_for_partition(1).get(encoded) is not None  # no transaction open
    async with app.transactions.step():
        no_event()  # Faust's expiry timer
        hourly.data.pop(key)
        assert key not in hourly.data
        assert hourly.data._db_for_partition(1).get(encoded) is not None
    await commit(app)
    assert hourly.data._db_for_partition(1).get(encoded) is None


def test_the_store_needs_rocksdict_write_batches(tmp_path: Path) -> None:
    batch = rocksdict.WriteBatch(raw_mode=True)
    batch.put(b"k", b"v")
    batch.put(TransactionalStore.offset_key, b"7")
    db = rocksdict.Rdict(str(tmp_path / "db"), rocksdict.Options(raw_mode=True))
    db.write(batch)
    assert db[b"k"] == b"v"
    assert db[TransactionalStore.offset_key] == b"7"
    db.close()


async def test_the_last_commit_after_the_tables_stopped_writes_to_the_same_databases(
    app: Any, sellers: Any, broker: Broker
) -> None:
    async with app.transactions.step():
        await ChangelogWrites(app, broker)([TableWrite(sellers, "s1", {"n": 1}, Event(0))])
    db = sellers.data._db_for_partition(0)
    await sellers.data.stop()  # Faust stops the tables before the consumer's last commit
    await commit(app)
    assert sellers.data._db_for_partition(0) is db
    assert on_disk(sellers, "s1", 0) == b'{"n":1}'
