"""The recovery loop that takes runs of changelog records: the same table contents and offsets as
Faust's one-record loop, on a real ``BulkRecovery`` over a real in-memory store (no broker).

The end-to-end proof (a worker restoring its tables from a real changelog, then answering) is
``tests/integration`` and the bench's recovery run.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

import faust
import orjson
import pytest
from faust.types import TP

from karrot_streams.runtime import internals
from karrot_streams.runtime.recovery import (
    CHANGELOG_QUEUE_MAX,
    BulkRecovery,
    BulkTableManager,
    Verdict,
    judge_recovery,
)
from karrot_streams.tables import codec
from karrot_streams.tables.aggregates import SellerSales, to_value
from karrot_streams.tables.declarations import changelog_verdict


class Message:
    def __init__(self, tp: TP, offset: int, key: bytes, value: bytes | None) -> None:
        self.tp = tp
        self.topic = tp.topic
        self.partition = tp.partition
        self.offset = offset
        self.key = key
        self.value = value


class Event:
    def __init__(self, message: Message) -> None:
        self.message = message


class Store(dict[bytes, bytes | None]):
    """The in-memory store's part the recovery reaches: no encoded values to read back, the
    offset a recovery starts from."""

    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


class Table:
    """What the recovery asks of a table: its buffer sizes and a batch apply."""

    name = "items"
    recovery_buffer_size = 3
    standby_buffer_size = 2

    def __init__(self) -> None:
        self.data = Store()
        self.applied: list[list[int]] = []
        self.seen: list[int] = []

    async def on_changelog_event(self, event: Event) -> None:
        self.seen.append(event.message.offset)

    def persisted_offset(self, tp: TP) -> int | None:
        return self.data.persisted.get(tp)

    def apply_changelog_batch(self, batch: list[Event]) -> None:
        self.applied.append([e.message.offset for e in batch])
        for event in batch:
            self.data[event.message.key] = event.message.value
            self.data.persisted[event.message.tp] = event.message.offset


ACTIVE = TP("app-items-changelog", 0)
STANDBY = TP("app-items-changelog", 1)


def record(tp: TP, offset: int, value: bytes | None = b"v") -> Event:
    return Event(Message(tp, offset, f"k{offset}".encode(), value))


@pytest.fixture
def app() -> faust.App:
    return faust.App(
        "test-bulk-recovery", broker="kafka://localhost:1", TableManager=BulkTableManager
    )


@pytest.fixture
def recovery(app: faust.App) -> tuple[BulkRecovery, Table]:
    manager = app.tables
    assert isinstance(manager, BulkTableManager)
    recovery = manager.recovery
    assert isinstance(recovery, BulkRecovery)
    table: Any = Table()  # what the recovery asks of Faust's Collection
    recovery.active_tps.add(ACTIVE)
    recovery.standby_tps.add(STANDBY)
    recovery.tp_to_table[ACTIVE] = table
    recovery.tp_to_table[STANDBY] = table
    return recovery, table


def test_the_app_uses_the_bulk_recovery_and_a_queue_that_holds_a_fetch(app: faust.App) -> None:
    assert isinstance(app.tables, BulkTableManager)
    assert app.tables.changelog_queue.maxsize == CHANGELOG_QUEUE_MAX
    assert app.tables.changelog_queue is app.tables.changelog_queue


async def test_a_run_skips_what_was_taken_and_writes_full_buffers(
    recovery: tuple[BulkRecovery, Table],
) -> None:
    bulk, table = recovery
    bulk.active_offsets[ACTIVE] = 1  # offsets 0 and 1 were taken before
    run = [record(ACTIVE, o) for o in (0, 1, 2, 3, 3, 4, 5, 6)]
    await bulk._apply_run(run)
    assert bulk.active_offsets[ACTIVE] == 6
    # The duplicate 3 (read again after a seek) is skipped like 0 and 1.
    assert table.seen == [2, 3, 4, 5, 6]
    assert table.applied == [[2, 3, 4]]  # the active buffer holds 3
    assert [e.message.offset for e in bulk.buffers[cast(Any, table)]] == [5, 6]
    bulk.flush_buffers()
    assert table.applied[-1] == [5, 6]
    assert set(table.data) == {b"k2", b"k3", b"k4", b"k5", b"k6"}
    # Faust's remaining-time estimate: one sample per record taken, at most its 1,000.
    assert len(bulk._processing_times) == 5
    await bulk._apply_run([record(ACTIVE, o) for o in range(7, 2_000)])
    assert len(bulk._processing_times) == bulk.num_samples_required_for_estimate
    # Counted as read (the metric a restart on its volume is measured by): the records taken.
    assert (bulk.active_records_read, bulk.standby_records_read) == (5 + 1_993, 0)


async def test_standby_and_unknown_partitions(recovery: tuple[BulkRecovery, Table]) -> None:
    bulk, table = recovery
    unknown = TP("app-items-changelog", 9)
    await bulk._apply_run([record(STANDBY, 0), record(unknown, 0), record(STANDBY, 1)])
    assert bulk.standby_offsets[STANDBY] == 1
    assert unknown not in bulk.active_offsets and unknown not in bulk.standby_offsets
    assert table.applied == [[0, 1]]  # the standby buffer holds 2; the unknown one not applied
    assert STANDBY in bulk._standby_events_received_at
    assert (bulk.active_records_read, bulk.standby_records_read) == (0, 2)


async def test_a_tombstone_is_applied_as_a_delete(recovery: tuple[BulkRecovery, Table]) -> None:
    bulk, table = recovery
    await bulk._apply_run([record(ACTIVE, 0), record(ACTIVE, 1, None), record(ACTIVE, 2)])
    assert table.applied == [[0, 1, 2]]
    assert table.data[b"k1"] is None


async def recover(bulk: BulkRecovery, highwater: int, records: int, wait_s: float) -> bool:
    """Queue ``records`` active records, run the loop until it signals the end of recovery or
    ``wait_s`` passes; whether it signalled."""
    bulk._set_recovery_started()
    bulk.active_highwaters[ACTIVE] = highwater
    bulk.active_offsets[ACTIVE] = -1
    queue: Any = bulk.tables.changelog_queue
    for offset in range(records):
        queue.put_nowait(record(ACTIVE, offset))
    loop = asyncio.ensure_future(BulkRecovery._slurp_changelogs.fun(bulk))
    try:
        await asyncio.wait_for(bulk.signal_recovery_end.wait(), timeout=wait_s)
    except TimeoutError:
        return False
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
    return True


async def test_the_loop_takes_what_is_queued_and_ends_recovery_at_the_highwater(
    recovery: tuple[BulkRecovery, Table],
) -> None:
    bulk, table = recovery
    assert await recover(bulk, highwater=4, records=5, wait_s=5)
    assert not bulk.in_recovery
    assert bulk.tables.changelog_queue.empty()
    # Full buffers written as they filled, the rest when recovery ended: all five, in order.
    assert [o for batch in table.applied for o in batch] == [0, 1, 2, 3, 4]


async def test_the_loop_does_not_end_recovery_short_of_the_highwater(
    recovery: tuple[BulkRecovery, Table],
) -> None:
    bulk, _ = recovery
    assert not await recover(bulk, highwater=10, records=5, wait_s=0.3)
    assert bulk.in_recovery
    assert bulk.active_offsets[ACTIVE] == 4


def by_number(current: bytes, incoming: bytes) -> Verdict:
    """A judge over values that are numbers: a lower one is older; ``!`` marks a conflict."""
    if incoming.endswith(b"!"):
        return Verdict.CONFLICT
    return Verdict.KEEP if int(incoming) < int(current.rstrip(b"!")) else Verdict.TAKE


def keyed(tp: TP, offset: int, key: bytes, value: bytes | None) -> Event:
    return Event(Message(tp, offset, key, value))


async def test_a_judged_table_keeps_its_keys_newer_values_within_a_buffer(
    app: faust.App, recovery: tuple[BulkRecovery, Table], caplog: pytest.LogCaptureFixture
) -> None:
    """The in-memory store keeps no encoded values: only a buffer's own records are compared."""
    bulk, table = recovery
    judge_recovery(app, table, by_number)
    run = [
        keyed(ACTIVE, 0, b"a", b"5"),
        keyed(ACTIVE, 1, b"a", b"3"),  # older than 5: kept out
        keyed(ACTIVE, 2, b"b", b"1"),
    ]
    with caplog.at_level(logging.INFO):
        await bulk._apply_run(run)
    assert table.data == {b"a": b"5", b"b": b"1"}
    assert bulk.stale_records == 1
    assert any("kept 1 changelog records older" in r.getMessage() for r in caplog.records)
    # The last record read is kept out: the next recovery still starts after it.
    await bulk._apply_run([keyed(ACTIVE, 3, b"c", b"7"), keyed(ACTIVE, 4, b"c", b"6")])
    bulk.flush_buffers()
    assert table.data[b"c"] == b"7"
    assert table.data.persisted[ACTIVE] == 4


async def test_tombstones_equal_values_and_conflicts_are_taken_and_conflicts_logged_once(
    app: faust.App, recovery: tuple[BulkRecovery, Table], caplog: pytest.LogCaptureFixture
) -> None:
    bulk, table = recovery
    judge_recovery(app, table, by_number)
    table.standby_buffer_size = 10  # one buffer: the fake store's values cannot be read back
    run = [
        keyed(STANDBY, 0, b"a", b"5"),
        keyed(STANDBY, 1, b"a", None),  # a tombstone always applies
        keyed(STANDBY, 2, b"a", b"2"),  # nothing to be older than
        keyed(STANDBY, 3, b"b", b"9"),
        keyed(STANDBY, 4, b"b", b"9"),  # equal: a normal re-write
        keyed(STANDBY, 5, b"b", b"4!"),
        keyed(STANDBY, 6, b"b", b"3!"),
    ]
    with caplog.at_level(logging.WARNING):
        await bulk._apply_run(run)
        bulk.flush_buffers()
    assert table.data == {b"a": b"2", b"b": b"3!"}
    assert (bulk.stale_records, bulk.conflicting_records) == (0, 2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "took 2 changelog records neither older nor newer" in warnings[0].getMessage()


SELLERS = TP("test-judged-sellers-changelog", 1)
SELLERS_0 = TP("test-judged-sellers-changelog", 0)


def sales(count: int, mark: int) -> bytes:
    return orjson.dumps(
        to_value(SellerSales("s", sales_count=count, applied={"payment-events:0": mark}))
    )


@pytest.fixture
def rocksdb_recovery(tmp_path: Path) -> tuple[BulkRecovery, Any]:
    """A real sellers table in Faust's RocksDB store (a database per partition), judged as the
    app judges it."""
    codec.register()
    app = faust.App(
        "test-judged",
        broker="kafka://localhost:1",
        store="rocksdb://",
        datadir=str(tmp_path),
        TableManager=BulkTableManager,
    )
    table = codec.use_for_values(app.Table("sellers", default=dict, key_type=str, partitions=2))
    table.recovery_buffer_size = 2
    table.standby_buffer_size = 2
    judge_recovery(app, table, changelog_verdict)
    manager = app.tables
    assert isinstance(manager, BulkTableManager)
    bulk = manager.recovery
    assert isinstance(bulk, BulkRecovery)
    bulk.active_tps.update({SELLERS, SELLERS_0})
    bulk.standby_tps.add(TP("test-judged-sellers-changelog", 2))
    for tp in (SELLERS, SELLERS_0):
        bulk.tp_to_table[tp] = table
    return bulk, table


def stored(table: Any, partition: int, key: bytes) -> bytes | None:
    values = internals.stored_values(table, partition, [key])
    assert values is not None
    return values[0]


async def test_a_stale_record_loses_to_the_value_in_the_run_and_in_the_store(
    rocksdb_recovery: tuple[BulkRecovery, Any],
) -> None:
    bulk, table = rocksdb_recovery
    key = b'"seller-1"'
    newer, stale, staler = sales(2, 10), sales(1, 5), sales(1, 3)
    # The new owner's value, then the zombie's: in one buffer, written when it fills.
    await bulk._apply_run([keyed(SELLERS, 0, key, newer), keyed(SELLERS, 1, key, stale)])
    assert stored(table, 1, key) == newer
    # Later, another stale record of the key: its value is the store's now.
    await bulk._apply_run([keyed(SELLERS, 2, key, staler)])
    bulk.flush_buffers()
    assert stored(table, 1, key) == newer
    assert bulk.stale_records == 2
    assert table.data.persisted_offset(SELLERS) == 2
    # A store is a database per partition: partition 0's value of the same key bytes is
    # another key's, and does not judge partition 1's record.
    await bulk._apply_run([keyed(SELLERS_0, 0, b'"seller-2"', newer)])
    await bulk._apply_run([keyed(SELLERS, 3, b'"seller-2"', stale)])
    bulk.flush_buffers()
    assert stored(table, 1, b'"seller-2"') == stale
    assert stored(table, 0, b'"seller-2"') == newer
    # A newer record replaces it, and a tombstone deletes whatever is there.
    await bulk._apply_run([keyed(SELLERS, 4, key, sales(3, 11)), keyed(SELLERS, 5, key, None)])
    assert stored(table, 1, key) is None


pause = asyncio.sleep


class Transactions:
    exactly_once = True
    timeout_s = 60.0


@pytest.fixture
def ticking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recovery's clock moves a second at each of its sleeps."""
    clock = [0.0]

    async def tick(seconds: float) -> None:
        clock[0] += 1.0
        await pause(0)

    monkeypatch.setattr("karrot_streams.runtime.recovery.monotonic", lambda: clock[0])
    monkeypatch.setattr("karrot_streams.runtime.recovery.asyncio.sleep", tick)


class Highwaters:
    """A consumer whose changelog end (the last stable offset) passes ``to`` after ``asks``
    asks: another producer's transaction open on the partition until then."""

    def __init__(self, before: int, to: int, asks: int) -> None:
        self.before = before
        self.to = to
        self.asks = asks
        self.asked = 0

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        self.asked += 1
        end = self.to if self.asked > self.asks else self.before
        return dict.fromkeys(tps, end)


async def test_a_highwater_held_below_the_persisted_offset_is_asked_again_past_a_few_seconds(
    recovery: tuple[BulkRecovery, Table],
    app: faust.App,
    ticking: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A zombie's open transaction holds the changelog's last stable offset below what this
    worker committed there (a fresh-clone CI run stopped with Faust's ConsistencyError): the
    recovery waits for it up to the transaction timeout, not the few seconds a commit's
    markers take."""
    bulk, table = recovery
    cast(Any, app).transactions = Transactions()
    table.data.persisted[ACTIVE] = 2558
    # Each ask a second later (``ticking``): past HIGHWATER_SETTLE_S after ten.
    consumer = Highwaters(before=2553, to=2570, asks=30)
    with caplog.at_level(logging.WARNING, logger="karrot_streams.runtime.recovery"):
        await bulk._build_highwaters(consumer, {ACTIVE}, bulk.active_highwaters, "active")
    assert consumer.asked == 31
    assert bulk.active_highwaters[ACTIVE] == 2569  # Faust's highwater: the end's offset - 1
    assert sum("a transaction still open" in r.getMessage() for r in caplog.records) == 1


async def test_a_highwater_still_below_after_the_transaction_timeout_is_left_to_faust(
    recovery: tuple[BulkRecovery, Table], app: faust.App, ticking: None
) -> None:
    """Past the transaction timeout no open transaction explains it: the changelog is behind
    the store, and Faust's consistency check says so."""
    bulk, table = recovery
    cast(Any, app).transactions = Transactions()
    table.data.persisted[ACTIVE] = 2558
    consumer = Highwaters(before=2553, to=2570, asks=10_000)
    await bulk._build_highwaters(consumer, {ACTIVE}, bulk.active_highwaters, "active")
    assert bulk.active_highwaters[ACTIVE] == 2552
    # The transaction timeout plus the broker's check for timed-out transactions, one ask a
    # second.
    assert 60 <= consumer.asked <= 72


async def test_without_transactions_a_highwater_below_is_asked_again_for_seconds_only(
    recovery: tuple[BulkRecovery, Table], ticking: None
) -> None:
    bulk, table = recovery
    table.data.persisted[ACTIVE] = 2558
    consumer = Highwaters(before=2553, to=2570, asks=10_000)
    await bulk._build_highwaters(consumer, {ACTIVE}, bulk.active_highwaters, "active")
    assert consumer.asked <= 12
