"""Fails when a Faust, mode or aiokafka internal the batch runtime uses changes shape.

Each name below is used by ``karrot_streams/runtime``. On an upgrade that breaks one of these,
read the new upstream source and adapt ``runtime/internals.py`` before moving the pins.
"""

from __future__ import annotations

import contextvars
import inspect
from pathlib import Path
from typing import Any

import aiokafka
import faust
import faust.streams
from aiokafka import TopicPartition
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.producer.producer import AIOKafkaProducer
from aiokafka.producer.transaction_manager import TransactionManager, TransactionState
from faust.agents.agent import Agent
from faust.sensors.monitor import Monitor
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.transport import consumer as faust_consumer
from faust.transport.conductor import Conductor
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.queues import FlowControlEvent

from karrot_streams.runtime import internals


def test_pinned_versions_are_the_ones_read() -> None:
    assert faust.__version__ == internals.FAUST_VERSION
    assert aiokafka.__version__ == internals.AIOKAFKA_VERSION


def test_drain_loop_is_the_fetchers_entry_point() -> None:
    assert list(inspect.signature(faust_consumer.Consumer._drain_messages).parameters) == [
        "self",
        "fetcher",
    ]
    # The fetcher's background task (a mode ServiceTask wrapping the coroutine function).
    assert "await consumer._drain_messages(self)" in Path(faust_consumer.__file__).read_text()


def test_consumer_internals_used_by_the_drain_loop() -> None:
    consumer = faust_aiokafka.Consumer
    for name in (
        "_wait_next_records",
        "_add_gap",
        "_to_message",
        "_get_active_partitions",
        "on_buffer_full",
        "on_buffer_drop",
        "perform_seek",
        "wait_first",
        "highwater",
        "on_partitions_revoked",
    ):
        assert callable(getattr(consumer, name)), name
    init = inspect.getsource(faust_consumer.Consumer.__init__)
    for attribute in ("_read_offset", "_buffered_partitions", "_unacked_messages"):
        assert f"self.{attribute} =" in init, attribute
    assert list(inspect.signature(consumer._wait_next_records).parameters) == ["self", "timeout"]
    assert list(inspect.signature(consumer._add_gap).parameters) == [
        "self",
        "tp",
        "offset_from",
        "offset_to",
    ]
    # getmany's own loop, which the runtime replaces, does what the runtime repeats.
    getmany = inspect.getsource(faust_consumer.Consumer.getmany)
    assert "self._wait_next_records(timeout)" in getmany
    assert "self.perform_seek()" in getmany
    assert "self._buffered_partitions" in getmany


def test_conductor_indexes() -> None:
    app = faust.App("internals-shape", autodiscover=False)
    conductor = app.topics
    assert isinstance(conductor, Conductor)
    assert isinstance(conductor._topic_name_index, dict)
    assert isinstance(conductor._acking_topics, set)
    assert "_topic_name_index" in inspect.getsource(type(conductor)._update_indices)


def test_transport_is_built_by_the_app() -> None:
    assert "transport.by_url" in inspect.getsource(faust.App._new_transport)
    assert faust_aiokafka.Transport.Consumer is faust_aiokafka.Consumer


def test_producer_batch_api() -> None:
    assert callable(faust_aiokafka.Producer._ensure_producer)
    for name in ("create_batch", "send_batch", "_partition"):
        assert callable(getattr(AIOKafkaProducer, name)), name
    init = inspect.getsource(AIOKafkaProducer.__init__)
    assert "self._partitioner =" in init
    assert "self._metadata =" in init
    assert list(inspect.signature(AIOKafkaProducer.send_batch).parameters) == [
        "self",
        "batch",
        "topic",
        "partition",
    ]


def test_table_value_serializer_is_read_when_used() -> None:
    assert "value_serializer=self.value_serializer" in inspect.getsource(
        Collection._new_store_by_url
    )
    assert "value_serializer = self.value_serializer" in inspect.getsource(
        Collection.send_changelog
    )
    assert isinstance(TableManager.changelog_queue, property)


def test_monitor_inbound_times() -> None:
    assert "stream_inbound_time" in inspect.getsource(Monitor.__init__)


def test_changelog_name_is_one_method_read_when_the_topic_is_made() -> None:
    assert callable(Collection._changelog_topic_name)
    assert "self._changelog_topic_name()" in inspect.getsource(Collection._new_changelog_topic)
    # Faust's annotations describe an instance's attribute; on the class it is the property.
    changelog_topic = inspect.getattr_static(Collection, "changelog_topic")
    assert isinstance(changelog_topic, property)
    assert changelog_topic.fset is not None
    # The manager indexes changelogs by name when a table is added; the runtime re-indexes.
    assert "self._changelogs[table.changelog_topic.get_topic_name()] = table" in (
        inspect.getsource(TableManager.add)
    )
    changelog_topics = inspect.getattr_static(TableManager, "changelog_topics")
    assert isinstance(changelog_topics, property)
    assert changelog_topics.fget is not None
    assert "set(self._changelogs.keys())" in inspect.getsource(changelog_topics.fget)


def test_queues_are_cleared_through_one_flow_control_method() -> None:
    """The consumer learns of every clear by wrapping ``flow_control.clear``: resume must go
    through it, and the app must hand out one flow control object."""
    app = faust.App("test-internals-flow", broker="kafka://localhost:1")
    assert app.flow_control is app.flow_control
    assert "self.clear()" in inspect.getsource(FlowControlEvent.resume)
    cleared: list[str] = []
    internals.on_queues_cleared(app, lambda: cleared.append("cleared"))
    app.flow_control.resume()
    app.flow_control.clear()
    assert cleared == ["cleared", "cleared"]


def test_paused_partitions_are_a_consumer_set() -> None:
    reset = inspect.getsource(faust_consumer.Consumer._reset_state)
    assert "self._paused_partitions = set()" in reset
    pause = inspect.getsource(faust_consumer.Consumer.pause_partitions)
    assert "self._paused_partitions.update" in pause


def test_recovery_positions_are_where_its_own_seek_goes() -> None:
    """After a clear the consumer seeks each changelog where Faust's recovery would: the last
    offset it took, which it then skips as seen."""
    from faust.tables.recovery import Recovery  # noqa: PLC0415  only this test needs it

    seek = inspect.getsource(Recovery._seek_offsets)
    assert "if offset == -1:" in seek
    assert "offset = 0" in seek
    slurp = inspect.getsource(Recovery._slurp_changelogs.fun)  # a mode ServiceTask
    assert "if seen_offset is None or offset > seen_offset:" in slurp
    app = faust.App("test-internals-recovery", broker="kafka://localhost:1")
    tables = app.tables
    assert isinstance(tables, TableManager)
    recovery = tables.recovery
    tp = TP("t-changelog", 0)
    recovery.standby_tps.add(tp)
    recovery.standby_offsets[tp] = -1
    assert internals.changelog_positions(app) == {tp: 0}
    assert "changelog_topics" in dir(type(app.tables))


def test_agent_actors_are_a_set_filled_as_actors_start() -> None:
    init = inspect.getsource(Agent.__init__)
    assert "self._actors = WeakSet()" in init
    assert "self._actors.add(" in inspect.getsource(Agent._prepare_actor)
    app = faust.App("internals-actors", autodiscover=False)

    @app.agent()
    async def idle(stream: object) -> None:
        return None

    assert internals.agent_actors(idle) == []


def test_committed_offsets_at_assignment_are_a_consumer_map() -> None:
    assert "self._committed_offset = defaultdict(" in inspect.getsource(
        faust_consumer.Consumer.__init__
    )
    assert "self._committed_offset.update(" in inspect.getsource(
        faust_consumer.Consumer.perform_seek
    )
    assert internals.committed_at_assignment(None) == {}


def test_monitoring_asks_the_faust_producer_for_its_aiokafka_producer() -> None:
    source = inspect.getsource(faust_aiokafka.Producer._ensure_producer)
    assert "self._producer" in source


def test_the_current_event_is_faust_streams_context_variable() -> None:
    class Event:
        pass

    def set_and_read() -> object:
        event = Event()
        internals.make_current_event(event)
        seen: object = faust.streams.current_event()
        return seen is event

    # In a copy of the context: the test leaves no current event behind.
    assert contextvars.copy_context().run(set_and_read) is True


def test_recovery_loop_replaced_by_the_bulk_one_is_the_one_read() -> None:
    """runtime/recovery.py replaces Faust's changelog loop and the manager's two properties; it
    repeats their rules with the recovery's own attributes."""
    from faust.tables.recovery import Recovery  # noqa: PLC0415  only these tests need it
    from mode.services import ServiceTask  # noqa: PLC0415

    assert isinstance(inspect.getattr_static(Recovery, "_slurp_changelogs"), ServiceTask)
    slurp = inspect.getsource(Recovery._slurp_changelogs.fun)
    for line in (
        "changelog_queue.get(), timeout=5.0",
        "if seen_offset is None or offset > seen_offset:",
        "await table.on_changelog_event(event)",
        "bufsize = buffer_sizes[tp] = table.recovery_buffer_size",
        "bufsize = buffer_sizes[tp] = table.standby_buffer_size",
        "if len(buf) >= bufsize:",
        "table.apply_changelog_batch(buf)",
        "if self.in_recovery and not self.need_recovery():",
        "self.flush_buffers()",
        "self._set_recovery_ended()",
        "self.signal_recovery_end.set()",
        "self.tables.on_standbys_ready()",
        "if timeout and self.app.in_transaction and timeout_count > 1:",
    ):
        assert line in slurp, line
    init = inspect.getsource(Recovery.__init__)
    for attribute in (
        "active_tps",
        "standby_tps",
        "tp_to_table",
        "active_offsets",
        "standby_offsets",
        "buffers",
        "buffer_sizes",
        "_active_events_received_at",
        "_standby_events_received_at",
        "_processing_times",
    ):
        assert f"self.{attribute} =" in init, attribute
    for name in (
        "_set_recovery_ended",
        "need_recovery",
        "flush_buffers",
        "standby_remaining_total",
    ):
        assert callable(getattr(Recovery, name)), name
    assert "_last_flush_at" in Recovery.__annotations__
    assert "_actives_span" in Recovery.__annotations__
    assert "_standbys_span" in Recovery.__annotations__
    # The manager builds both lazily behind these properties, from these attributes.
    for name in ("recovery", "changelog_queue"):
        assert isinstance(inspect.getattr_static(TableManager, name), property), name
    manager = inspect.getsource(TableManager)
    assert "self._recovery = Recovery(" in manager
    assert "self._changelog_queue = self.app.FlowControlQueue(" in manager
    assert "TableManager" in dir(faust.App("test-internals-manager").conf)


def test_table_writes_repeat_what_a_faust_table_set_does() -> None:
    """tables/writes.py writes a value the way ``table[key] = value`` does: the store's
    encoders (the changelog send uses the same registry, types and codecs), the store's raw
    ``_set`` in the current event's partition, the windowed tables' expiry bookkeeping, the
    changelog record in the current event's partition, and the persisted offset on its ack."""
    from faust.stores.base import Store  # noqa: PLC0415  only this test needs them
    from faust.stores.rocksdb import Store as RocksStore  # noqa: PLC0415
    from faust.tables.table import Table  # noqa: PLC0415

    assert "serializer=self.key_serializer" in inspect.getsource(Store._encode_key)
    assert "serializer=self.value_serializer" in inspect.getsource(Store._encode_value)
    assert "def _set(self, key: bytes, value: Optional[bytes])" in inspect.getsource(RocksStore)
    assert "current_event()" in inspect.getsource(RocksStore._set)
    on_key_set = inspect.getsource(Table.on_key_set)
    assert "self.send_changelog(self.partition_for_key(key), key, value)" in on_key_set
    assert "self._maybe_set_key_ttl(key, partition)" in on_key_set
    assert "return event.message.partition" in inspect.getsource(Collection.partition_for_key)
    sent = inspect.getsource(Collection._on_changelog_sent)
    assert "self.app.tables.persist_offset_on_commit(" in sent
    assert "self.data.set_persisted_offset(res.topic_partition, res.offset)" in sent
    send = inspect.getsource(Collection.send_changelog)
    assert "key_serializer = self.key_serializer" in send
    assert list(inspect.signature(Collection._maybe_set_key_ttl).parameters) == [
        "self",
        "key",
        "partition",
    ]
    assert callable(RocksStore.set_persisted_offset)
    # persisted_changelog_offset: the offset a store's recovery starts after, or None.
    assert list(inspect.signature(RocksStore.persisted_offset).parameters) == ["self", "tp"]
    assert callable(TableManager.persist_offset_on_commit)


# -- exactly once ---------------------------------------------------------------------------------


def test_aiokafka_transaction_internals_used_for_exactly_once() -> None:
    # The sender commits a transaction's offsets through this method; internals replaces it.
    assert list(inspect.signature(aiokafka_sender.Sender._do_txn_offset_commit).parameters) == [
        "self",
        "offsets",
        "group_id",
    ]
    assert "TxnOffsetCommitHandler(self, offsets, group_id)" in inspect.getsource(
        aiokafka_sender.Sender._do_txn_offset_commit
    )
    handler = inspect.getsource(aiokafka_sender.TxnOffsetCommitHandler)
    for name in ("self._offsets", "self._group_id", "txn_manager.offset_committed("):
        assert name in handler, name
    for name in ("_find_coordinator", "_coordinator_dead"):
        assert callable(getattr(aiokafka_sender.Sender, name)), name
    assert "self._default_backoff" in inspect.getsource(aiokafka_sender.BaseHandler.__init__)
    for name in ("error_transaction", "offset_committed", "producer_id", "producer_epoch"):
        assert hasattr(TransactionManager, name), name
    manager = inspect.getsource(TransactionManager.__init__)
    assert "self._transaction_waiter" in manager or "_transaction_waiter" in inspect.getsource(
        TransactionManager
    )
    assert {"IN_TRANSACTION", "ABORTABLE_ERROR", "FATAL_ERROR"} <= set(TransactionState.__members__)
    producer = inspect.getsource(AIOKafkaProducer.__init__)
    assert "self._txn_manager" in producer
    assert "self._sender = Sender(" in producer
    coordinator = inspect.getsource(GroupCoordinator.__init__)
    for attribute in ("self.generation", "self.member_id", "self._group_instance_id"):
        assert attribute in coordinator, attribute


def test_consumer_isolation_level_and_faust_client_hooks() -> None:
    consumer = inspect.getsource(aiokafka.AIOKafkaConsumer)
    assert "self._isolation_level = isolation_level" in consumer
    assert "isolation_level=self._isolation_level" in consumer
    thread = faust_aiokafka.AIOKafkaConsumerThread
    assert list(inspect.signature(thread._create_worker_consumer).parameters) == [
        "self",
        "transport",
    ]
    assert "AIOKafkaConsumerThread(self, loop=self.loop, beacon=self.beacon)" in (
        inspect.getsource(faust_aiokafka.Consumer._new_consumer_thread)
    )
    assert list(inspect.signature(faust_aiokafka.Producer._new_producer).parameters) == [
        "self",
        "transactional_id",
    ]
    assert callable(faust_aiokafka.Producer._settings_extra)
    # The consumer commits through ``_commit`` outside Faust's own transactions.
    commit_offsets = inspect.getsource(faust_consumer.Consumer._commit_offsets)
    assert "did_commit = await self._commit(committable_offsets)" in commit_offsets
    assert "self.app.tables.on_commit(committable_offsets)" in commit_offsets


def test_recovery_reads_and_writes_the_store_where_faust_puts_a_changelog_record(
    tmp_path: Path,
) -> None:
    """runtime/recovery.py judges a record against the value its key has in its own partition's
    database (Faust's RocksDB store: one per partition), read for many keys at once, and moves
    the recovery start past records it keeps out, as the store's batch apply does; its
    ``flush_buffers`` repeats Faust's with a judged write."""
    import rocksdict  # noqa: PLC0415  only this test needs them
    from faust.stores.memory import Store as MemoryStore  # noqa: PLC0415
    from faust.stores.rocksdb import Store as RocksStore  # noqa: PLC0415
    from faust.tables.recovery import Recovery  # noqa: PLC0415

    assert list(inspect.signature(RocksStore._db_for_partition).parameters) == [
        "self",
        "partition",
    ]
    apply = inspect.getsource(RocksStore.apply_changelog_batch)
    assert "batches[msg.partition].put(msg.key, msg.value)" in apply
    assert "self._db_for_partition(partition).write(batch)" in apply
    assert "self.set_persisted_offset(tp, offset)" in apply
    assert "self.use_rocksdict = USE_ROCKSDICT" in inspect.getsource(RocksStore.__init__)
    # Its databases hold bytes: a key and value read are the changelog record's own.
    assert "Options(raw_mode=True)" in Path(inspect.getfile(RocksStore)).read_text()
    assert not hasattr(MemoryStore, "_db_for_partition")
    assert callable(RocksStore.set_persisted_offset)
    flush = inspect.getsource(Recovery.flush_buffers)
    assert "table.apply_changelog_batch(buffer)" in flush
    assert "self._last_flush_at = monotonic()" in flush
    # rocksdict's get of a list of keys is a multi-get, None where a key is missing.
    db = rocksdict.Rdict(str(tmp_path / "db"), rocksdict.Options(raw_mode=True))
    db[b"a"] = b"1"
    assert db.get([b"a", b"b"]) == [b"1", None]
    db.close()


def test_recovery_builds_highwaters_where_bulk_recovery_waits_for_markers() -> None:
    from faust.tables.recovery import Recovery  # noqa: PLC0415  one test's subject

    assert list(inspect.signature(Recovery._build_highwaters).parameters) == [
        "self",
        "consumer",
        "tps",
        "destination",
        "title",
    ]
    source = inspect.getsource(Recovery)
    assert '"active"' in source and '"standby"' in source
    assert "active_offsets[tp] > active_highwaters[tp]" in source


def _consumer_with_acks(tp: TP, seen: dict[str, object]) -> object:
    """A Faust aiokafka consumer (never started) with acked offsets on ``tp``, whose app's
    revoke notes what it sees of them."""
    app = faust.App("internals-revoke", broker="kafka://localhost:1")

    async def app_revoke(revoked: set[TP]) -> None:
        seen["acked"] = list(consumer._acked.get(tp, []))
        seen["committed"] = consumer._committed_offset.get(tp)

    async def app_assign(assigned: set[TP]) -> None:
        return None

    async def deliver(message: object) -> None:
        return None

    consumer = faust_aiokafka.Consumer(
        app.transport,
        callback=deliver,
        on_partitions_revoked=app_revoke,
        on_partitions_assigned=app_assign,
    )
    consumer._acked[tp].extend([5, 6, 7])
    consumer._acked_index[tp].update({5, 6, 7})
    consumer._committed_offset[tp] = 5
    return consumer


async def test_stock_faust_forgets_acks_before_the_apps_revoke_commits() -> None:
    """The defect :func:`internals.acks_kept_through_revoke` works around. When this fails,
    Faust keeps them itself: the workaround can go."""
    tp = TP("source", 0)
    seen: dict[str, object] = {}
    consumer: Any = _consumer_with_acks(tp, seen)
    await consumer.on_partitions_revoked({tp})
    assert seen == {"acked": [], "committed": None}


async def test_acks_are_kept_for_the_apps_revoke_and_forgotten_after() -> None:
    tp, other = TP("source", 0), TP("source", 1)
    seen: dict[str, object] = {}
    consumer: Any = _consumer_with_acks(tp, seen)
    consumer._acked[other].append(9)
    app_revoke = consumer._on_partitions_revoked
    with internals.acks_kept_through_revoke(consumer, {tp}):
        await consumer.on_partitions_revoked({tp})
    assert seen == {"acked": [5, 6, 7], "committed": 5}
    assert tp not in consumer._acked and tp not in consumer._committed_offset
    assert tp not in consumer._acked_index
    assert consumer._acked[other] == [9]  # a partition kept is left as it was
    assert consumer._on_partitions_revoked is app_revoke


def test_the_transactional_store_overrides_faust_rocksdb_store_where_it_reads_and_writes() -> None:
    """runtime/transactional_store.py overrides the byte-level methods of Faust's RocksDB store
    and uses its per-partition databases, key index and active-partition filter; Faust's
    window expiry deletes through the store; ``register_store`` adds to Faust's registry."""
    from faust import stores  # noqa: PLC0415  only this test needs them
    from faust.stores.base import SerializedStore  # noqa: PLC0415
    from faust.stores.memory import Store as MemoryStore  # noqa: PLC0415
    from faust.stores.rocksdb import Store as RocksStore  # noqa: PLC0415

    for name in (
        "_get",
        "_set",
        "_del",
        "_contains",
        "_iterkeys",
        "_itervalues",
        "_iteritems",
        "_size",
    ):
        assert name in SerializedStore.__abstractmethods__, name
        assert name in vars(RocksStore), name
    init = inspect.getsource(RocksStore.__init__)
    assert "self._dbs = {}" in init
    assert "self._key_index = LRUCache(" in init
    assert list(inspect.signature(RocksStore.revoke_partitions).parameters) == [
        "self",
        "table",
        "tps",
    ]
    assert "self._dbs.pop(tp.partition, None)" in inspect.getsource(RocksStore.revoke_partitions)
    for name in ("_dbs_for_actives", "_visible_items", "_visible_keys", "reset_state"):
        assert callable(getattr(RocksStore, name)), name
    assert "self.offset_key" in inspect.getsource(RocksStore.set_persisted_offset)
    assert "self.offset_key" in inspect.getsource(RocksStore.persisted_offset)
    # The partition a read goes to, which the buffer's reads repeat.
    for method in (RocksStore._get, RocksStore._contains):
        source = inspect.getsource(method)
        assert "and not self.table.is_global" in source
        assert "and not self.table.use_partitioner" in source
        assert "partition = event.message.partition" in source
    assert "self._dbs[self._key_index[key]]" in inspect.getsource(RocksStore._dbs_for_key)
    assert "self._dbs.clear()" in inspect.getsource(RocksStore.stop)  # kept open instead
    assert "self.data.pop(key_to_remove, None)" in inspect.getsource(Collection._del_old_keys)
    internals.register_store("karrot-shape", "faust.stores.memory:Store")
    try:
        assert stores.by_url("karrot-shape://") is MemoryStore
    finally:
        del stores.STORES.aliases["karrot-shape"]


def _transaction_with_a_partition_and_a_group() -> TransactionManager:
    tp = TopicPartition("in", 0)
    manager = TransactionManager("karrot-tx-t", 60_000)
    manager.set_pid_and_epoch(1, 0)
    manager.begin_transaction()
    manager.maybe_add_partition_to_txn(tp)
    manager.partition_added(tp)
    manager.consumer_group_added("group")
    assert not manager.is_empty_transaction()
    return manager


async def test_a_refused_transaction_keeps_what_its_abort_must_end() -> None:
    """aiokafka's abort sends EndTxn only for a transaction it knows is not empty: its own
    ``error_transaction`` forgets the partitions and group (the aborted records were then
    committed by the next transaction); the refusal keeps them."""
    stock = _transaction_with_a_partition_and_a_group()
    stock.error_transaction(RuntimeError("refused"))
    assert stock.is_empty_transaction()  # fixed upstream? then the refusal's copy can go
    stock._transaction_waiter.exception()

    manager = _transaction_with_a_partition_and_a_group()
    internals._refuse_transaction(manager, RuntimeError("refused"))
    manager._transaction_waiter.exception()
    assert manager.state is TransactionState.ABORTABLE_ERROR
    manager.aborting_transaction()
    assert not manager.is_empty_transaction()
    assert manager.needs_transaction_commit() is not None  # EndTxn(ABORT) is sent
