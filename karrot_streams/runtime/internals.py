"""Every place the project touches a private part of Faust, mode or aiokafka.

Pinned together in pyproject.toml: faust-streaming 0.15.3, mode-streaming 0.4.x, aiokafka
0.14.0. ``tests/unit/runtime/test_internals.py`` fails when any name used here changes shape on an
upgrade; read the new source before changing the pins.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableSet
from contextlib import contextmanager
from typing import Any

import aiokafka.errors as aiokafka_errors
from aiokafka.client import CoordinationType
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.producer.transaction_manager import TransactionState
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust import stores as faust_stores
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from karrot_streams.runtime import kip447
from karrot_streams.runtime.kip447 import GroupMetadata
from karrot_streams.runtime.state_marks import TRANSACTIONAL_ID_PREFIX

log = logging.getLogger(__name__)

#: Versions the names below were read from.
FAUST_VERSION = "0.15.3"
AIOKAFKA_VERSION = "0.14.0"


def subscribed_channels(app: Any, topic: str) -> MutableSet[Any]:
    """The iterator channels (one per agent actor) that receive records of ``topic``.

    The conductor's own index, which its compiled per-partition callbacks close over.
    """
    index: Mapping[str, MutableSet[Any]] = app.topics._topic_name_index
    return index.get(topic) or set()


def acked_topics(app: Any) -> set[str]:
    """Topics whose offsets Faust commits only once acked (every agent's source topic)."""
    return app.topics._acking_topics  # type: ignore[no-any-return]


def read_offset(consumer: Any) -> dict[TP, int | None]:
    """Faust's per-partition offset of the last record handed to a stream (gap detection)."""
    return consumer._read_offset  # type: ignore[no-any-return]


async def add_gap(consumer: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    """Offsets the broker skipped (compaction, transaction markers): committable without acks."""
    await consumer._add_gap(tp, offset_from, offset_to)


def paused_partitions(consumer: Any) -> set[TP]:
    """Partitions Faust keeps out of the fetch during recovery (its ``pause_partitions``)."""
    return consumer._paused_partitions  # type: ignore[no-any-return]


def on_queues_cleared(app: Any, callback: Callable[[], None]) -> None:
    """Call ``callback`` each time Faust empties the agents' queues.

    Faust clears them through ``app.flow_control.clear()``: when a rebalance revokes partitions,
    and again from ``flow_control.resume()`` once the streams have been sought to their
    committed offsets. Events delivered and not yet taken are gone then, while the fetch position
    is already past them: the consumer must read them again.
    """
    flow = app.flow_control  # a cached property: the one object every queue registers with
    clear = flow.clear

    def cleared() -> None:
        clear()
        callback()

    flow.clear = cleared


def changelog_positions(app: Any) -> dict[TP, int]:
    """Where Faust's recovery would seek each changelog partition it reads (active or standby).

    Its ``_seek_offsets`` seeks to the last offset it took (``-1``: none, so 0); its
    ``_slurp_changelogs`` skips records at or below that offset.
    """
    recovery = app.tables.recovery
    positions: dict[TP, int] = {}
    for tps, offsets in (
        (recovery.active_tps, recovery.active_offsets),
        (recovery.standby_tps, recovery.standby_offsets),
    ):
        for tp in tps:
            offset = offsets.get(tp)
            if offset is not None:
                positions[tp] = max(offset, 0)
    return positions


def buffered_partitions(consumer: Any) -> set[TP]:
    """Partitions Faust keeps out of the fetch because their stream's buffer is full."""
    return consumer._buffered_partitions  # type: ignore[no-any-return]


async def next_records(
    consumer: Any,
    timeout: float,  # noqa: ASYNC109  Faust's fetch wait, passed through
) -> tuple[Mapping[TP, list[Any]] | None, set[TP] | None]:
    """One fetch: the records per partition and the partitions that were active for it.

    Faust's ``getmany`` does this and then yields one record at a time; the runtime takes the
    whole map instead.
    """
    return await consumer._wait_next_records(timeout)  # type: ignore[no-any-return]


def mark_stream_inbound(monitor: Any, tps: Iterable[TP]) -> None:
    """Tell Faust's slow-processing check that these partitions' streams took records.

    Faust sets this per event in a sensor hook the runtime does not call; without it Faust logs
    ``Stream has not started processing`` for partitions that are being processed.
    """
    inbound = getattr(monitor, "stream_inbound_time", None)
    if inbound is not None:
        now = time.monotonic()
        for tp in tps:
            inbound[tp] = now


def agent_actors(agent: Any) -> list[Any]:
    """The actors an agent runs (the liveness watchdog checks their tasks).

    Faust keeps no public list of them: ``Agent._actors``, a WeakSet filled as actors start.
    """
    return list(agent._actors)


#: Faust's per-partition bookkeeping in its ``Consumer`` (maps keyed by TP), which its
#: ``on_partitions_revoked`` forgets for the revoked partitions.
_PARTITION_BOOKKEEPING = ("_gap", "_acked", "_acked_index", "_read_offset", "_committed_offset")


@contextmanager
def acks_kept_through_revoke(consumer: Any, revoked: Iterable[TP]) -> Iterator[None]:
    """Around Faust's ``Consumer.on_partitions_revoked``: the revoked partitions' acked offsets
    (and the rest of their bookkeeping) are there for the app's revoke, and forgotten after it.

    faust-streaming 0.15.3 forgets them first and then runs the app's revoke, whose commit
    (``wait_empty``, after the agents finish what they took) therefore misses every offset acked
    since the last commit. Under exactly-once the open transaction then commits those records'
    outputs without their offsets, and whoever owns the partition next reads and produces them
    again: duplicates for ``read_committed`` readers at every rebalance (Faust's are eager, so
    every partition of every member). Under at-least-once they are processed again.

    The app's revoke is ``consumer._on_partitions_revoked`` (set from the constructor): it is
    wrapped for the one call to put the bookkeeping back, as it was before Faust's pops.
    """
    revoked = set(revoked)
    maps = [getattr(consumer, name) for name in _PARTITION_BOOKKEEPING]
    kept = [{tp: entries[tp] for tp in revoked if tp in entries} for entries in maps]
    app_revoke = consumer._on_partitions_revoked

    async def revoke(partitions: set[TP]) -> None:
        for entries, before in zip(maps, kept, strict=True):
            for tp, value in before.items():
                entries.setdefault(tp, value)
        try:
            await app_revoke(partitions)
        finally:
            for entries in maps:
                for tp in partitions:
                    entries.pop(tp, None)

    consumer._on_partitions_revoked = revoke
    try:
        yield
    finally:
        consumer._on_partitions_revoked = app_revoke


def committed_at_assignment(consumer: Any) -> dict[TP, int | None]:
    """Per partition, the group's committed offset as read when it was assigned.

    ``Consumer._committed_offset``, Faust's private map: the commit monitor sees only the commits
    made since this worker started. Empty before the consumer exists.
    """
    return dict(getattr(consumer, "_committed_offset", None) or {})


def make_current_event(event: Any) -> None:
    """Make ``event`` the current event of this task (what ``faust.current_event()`` answers).

    Faust's context variable ``faust.streams._current_event``, which table reads and writes
    consult for the partition; only the variable is set, not the stream's attribute.
    """
    _current_event.set(weakref.ref(event))


def aiokafka_producer(app: Any) -> Any:
    """The aiokafka producer behind Faust's, for batch sends (created on first use)."""
    return app.producer._ensure_producer()


async def wait_for_topic_metadata(producer: Any, topic: str) -> None:
    await producer.client._wait_on_metadata(topic)


def partitioner(producer: Any) -> Any:
    """The partitioner aiokafka's ``send`` uses for a keyed record."""
    return producer._partitioner


def topic_partitions(producer: Any, topic: str) -> tuple[list[int], list[int]]:
    """All and available partitions of ``topic``, as aiokafka's ``send`` passes them."""
    metadata = producer._metadata
    every = list(metadata.partitions_for_topic(topic) or ())
    available = list(metadata.available_partitions_for_topic(topic) or ())
    return every, available


def consumer_class() -> type[Any]:
    return faust_aiokafka.Consumer


def transport_class() -> type[Any]:
    return faust_aiokafka.Transport


def use_event_loop(name: str) -> None:
    """Install the worker's event loop policy before Faust's worker creates its loop."""
    import mode.loop  # noqa: PLC0415  only the worker entry point switches loops

    if name != "asyncio":
        mode.loop.use(name)


def pin_changelog_topic(table: Any, name: str) -> None:
    """Give ``table`` the changelog topic ``name`` whatever the app's id.

    Faust names a changelog ``{app id}-{table}-changelog``; an aggregates-only worker has an id
    of its own (its own consumer group) but must keep the tables' changelogs.
    """
    index = table.app.tables._changelogs  # the manager's changelog name -> table, from add()
    old = table.changelog_topic.get_topic_name()
    table._changelog_topic_name = lambda: name
    table.changelog_topic = table._new_changelog_topic()
    if index.get(old) is table:
        del index[old]
    index[name] = table


def encode_table_entry(table: Any, key: Any, value: Any) -> tuple[bytes, bytes | None]:
    """``key`` and ``value`` as ``table`` stores them and sends them to its changelog.

    The store's own encoders: Faust's changelog send calls the same serializer registry with
    the same types and codecs (the changelog topic takes the table's), so one encoding serves
    both.
    """
    store = table.data
    return store._encode_key(key), store._encode_value(value)


def store_put(table: Any, key: bytes, value: bytes | None) -> None:
    """Encoded bytes into ``table``'s store, in the current event's partition (Faust's rule)."""
    table.data._set(key, value)


def track_key_expiry(table: Any, key: Any, partition: int) -> None:
    """What a windowed table's ``on_key_set`` records so its expired windows are deleted."""
    table._maybe_set_key_ttl(key, partition)


def register_store(scheme: str, target: str) -> None:
    """Make ``{scheme}://`` (a table's ``store`` URL) name the store class ``target``
    (``module:Class``): an entry of Faust's store registry, as ``rocksdb`` names its own."""
    faust_stores.STORES[scheme] = target


def persisted_changelog_offset(table: Any, tp: TP) -> int | None:
    """Where ``table``'s recovery of ``tp`` starts: the store holds the changelog up to it."""
    offset: int | None = table.data.persisted_offset(tp)
    return offset


def persist_changelog_offset(table: Any, tp: TP, offset: int) -> None:
    """Where ``table``'s recovery starts for ``tp``, once its changelog holds ``offset``.

    Faust's ``_on_changelog_sent``: at once, or at the transaction's commit under exactly-once.
    """
    app = table.app
    if app.in_transaction:
        app.tables.persist_offset_on_commit(table.data, tp, offset)
    else:
        table.data.set_persisted_offset(tp, offset)


# -- exactly once (runtime/transactions.py, runtime/kafka_clients.py) ----------------------------


def aiokafka_consumer(consumer: Any) -> Any:
    """The aiokafka consumer behind Faust's (its consumer thread's)."""
    return consumer._thread._ensure_consumer()


def group_metadata(consumer: Any) -> GroupMetadata:
    """The group membership an aiokafka consumer holds now: what KIP-447 sends with the
    offsets.

    aiokafka's ``GroupCoordinator`` keeps it in ``generation``, ``member_id`` and
    ``_group_instance_id``; it has no public accessor.
    """
    coordinator = consumer._coordinator
    return GroupMetadata(
        group_id=coordinator.group_id,
        generation_id=coordinator.generation,
        member_id=coordinator.member_id,
        group_instance_id=coordinator._group_instance_id,
    )


def read_committed(consumer: Any) -> None:
    """Make a created, not yet started aiokafka consumer read committed records only.

    Faust chooses ``read_committed`` only under its own ``exactly_once``, which the project does
    not use; aiokafka passes ``_isolation_level`` to its fetcher when the consumer starts.
    """
    consumer._isolation_level = "read_committed"


def fetch_position(consumer: Any, tp: Any) -> int | None:
    """aiokafka's position of ``tp`` now (the next offset it fetches), without waiting.

    ``AIOKafkaConsumer.position`` waits for a position to be known; this reads the assignment's
    ``TopicPartitionState`` as it is.
    """
    partition = TopicPartition(tp[0], tp[1])
    subscription = consumer._subscription
    if not subscription.is_assigned(partition):
        return None
    state = subscription.subscription.assignment.state_value(partition)
    return state.position if state.has_valid_position else None


def last_stable_offset(consumer: Any, tp: Any) -> int | None:
    """The last stable offset of ``tp`` from the consumer's last fetch (``None``: unknown).

    aiokafka's ``last_stable_offset`` asserts the partition is assigned.
    """
    partition = TopicPartition(tp[0], tp[1])
    if not consumer._subscription.is_assigned(partition):
        return None
    stable: int | None = consumer.last_stable_offset(partition)
    return stable


def consumer_thread_class() -> type[Any]:
    return faust_aiokafka.AIOKafkaConsumerThread


def producer_class() -> type[Any]:
    return faust_aiokafka.Producer


def transaction_error(producer: Any) -> BaseException | None:
    """The error that keeps the producer's transaction from committing, if there is one.

    aiokafka's ``TransactionManager`` moves to ``ABORTABLE_ERROR`` or ``FATAL_ERROR`` and keeps
    the exception in its ``_transaction_waiter``.
    """
    manager = producer._txn_manager
    if manager is None or manager.state not in (
        TransactionState.ABORTABLE_ERROR,
        TransactionState.FATAL_ERROR,
    ):
        return None
    waiter = manager._transaction_waiter
    if waiter is not None and waiter.done() and not waiter.cancelled():
        return waiter.exception() or RuntimeError(manager.state.name)
    return RuntimeError(manager.state.name)


def can_abort(producer: Any) -> bool:
    """Whether ``abort_transaction`` is a valid step from the producer's transaction state."""
    manager = producer._txn_manager
    return manager is not None and manager.state in (
        TransactionState.IN_TRANSACTION,
        TransactionState.ABORTABLE_ERROR,
    )


async def send_offsets_to_transaction(
    producer: Any, offsets: Mapping[Any, int], group: GroupMetadata
) -> None:
    """Add ``offsets`` to the producer's transaction as ``group``'s member (KIP-447).

    aiokafka's ``send_offsets_to_transaction`` takes a group id only and its sender commits the
    offsets with TxnOffsetCommit v0. The sender's ``_do_txn_offset_commit`` is replaced, for this
    producer only, by one that sends v3 with the group's generation and member id.
    """
    sender = producer._sender
    if not getattr(sender, "_karrot_fenced_commits", False):
        _install_fenced_offset_commits(sender)
    sender._karrot_group = group
    await producer.send_offsets_to_transaction(
        {
            TopicPartition(tp[0], tp[1]): OffsetAndMetadata(offset, "")
            for tp, offset in offsets.items()
        },
        group.group_id,
    )


class GroupRefusedOffsets(aiokafka_errors.CommitFailedError):  # type: ignore[misc]
    """The consumer group refused a transaction's offsets (KIP-447: an old generation, or a
    member it no longer knows). That member and generation can never commit again: the worker
    commits next only after it joined again, and its join revokes every partition first."""


def _refuse_transaction(manager: Any, exc: Exception) -> None:
    """aiokafka's ``TransactionManager.error_transaction`` (abortable error state, the offsets'
    waiters told), with the transaction's partitions and group kept.

    aiokafka 0.14's ``error_transaction`` forgets them, and its abort then takes the transaction
    for an empty one and sends no ``EndTxn``: the broker keeps it open, and the producer's next
    transaction (same id and epoch) adds to it and commits the records meant to be aborted. A
    worker that stops after the error never commits again, so that was harmless; one that goes
    on (a refusal by the group) must abort for real.
    """
    partitions, group = set(manager._txn_partitions), manager._txn_consumer_group
    manager.error_transaction(exc)
    manager._txn_partitions.update(partitions)
    manager._txn_consumer_group = group


def _install_fenced_offset_commits(sender: Any) -> None:
    async def do_txn_offset_commit(offsets: Any, group_id: str) -> None:
        if not offsets:
            return
        try:
            node_id = await sender._find_coordinator(CoordinationType.GROUP, group_id)
        except aiokafka_errors.GroupAuthorizationFailedError as exc:
            sender._txn_manager.error_transaction(exc)
            return
        await _FencedOffsetCommit(sender, offsets, group_id).do(node_id)

    sender._do_txn_offset_commit = do_txn_offset_commit
    sender._karrot_fenced_commits = True


class _FencedOffsetCommit(aiokafka_sender.TxnOffsetCommitHandler):  # type: ignore[misc]
    """aiokafka's TxnOffsetCommit handler with the request and response of v3.

    The error handling is aiokafka's (retry on a moving coordinator, fenced producer is fatal)
    plus the group's refusals, which abort the transaction (see runtime/kip447.py).
    """

    def create_request(self) -> Any:
        manager = self._sender._txn_manager
        return kip447.TxnOffsetCommitRequest(
            transactional_id=manager.transactional_id,
            producer_id=manager.producer_id,
            producer_epoch=manager.producer_epoch,
            group=self._sender._karrot_group,
            offsets={(tp.topic, tp.partition): meta.offset for tp, meta in self._offsets.items()},
        )

    def handle_response(self, resp: Any) -> float | None:
        manager = self._sender._txn_manager
        for topic, partition, code in kip447.partition_errors(resp):
            tp = TopicPartition(topic, partition)
            if code == 0:
                manager.offset_committed(tp, self._offsets[tp].offset, self._group_id)
                continue
            if code in kip447.FENCING_ERRORS:
                _refuse_transaction(
                    manager,
                    GroupRefusedOffsets(
                        f"Group {self._group_id} refused the transaction's offsets for {tp}:"
                        f" {kip447.FENCING_ERRORS[code]} (this worker no longer owns it)"
                    ),
                )
                return None
            error_type = aiokafka_errors.for_code(code)
            if error_type in (
                aiokafka_errors.CoordinatorNotAvailableError,
                aiokafka_errors.NotCoordinatorError,
                aiokafka_errors.RequestTimedOutError,
            ):
                self._sender._coordinator_dead(CoordinationType.GROUP)
                return self._default_backoff  # type: ignore[no-any-return]
            if error_type in (
                aiokafka_errors.CoordinatorLoadInProgressError,
                aiokafka_errors.UnknownTopicOrPartitionError,
                aiokafka_errors.ConcurrentTransactions,
            ):
                return self._default_backoff  # type: ignore[no-any-return]
            if error_type is aiokafka_errors.InvalidProducerEpoch:
                raise aiokafka_errors.ProducerFenced()
            manager.error_transaction(error_type())
            return None
        return None


def stored_values(table: Any, partition: int, keys: list[bytes]) -> list[bytes | None] | None:
    """What ``table``'s store holds for the encoded ``keys`` of ``partition``, in one read.

    Faust's RocksDB store keeps a database per partition, and a changelog record's key lives in
    its own partition's (``apply_changelog_batch`` writes it there, ``_set`` in the current
    event's partition); its ``_get`` would instead search every partition without a current
    event. ``None`` for a store that keeps no encoded values (the in-memory store holds decoded
    ones).
    """
    store = table.data
    db_for_partition = getattr(store, "_db_for_partition", None)
    if db_for_partition is None:
        return None
    db = db_for_partition(partition)
    if store.use_rocksdict:
        return db.get(keys)  # type: ignore[no-any-return]  # rocksdict: a list is a multi-get
    return [db.get(key) for key in keys]


def persist_recovered_offset(table: Any, tp: TP, offset: int) -> None:
    """Where ``table``'s next recovery of ``tp`` starts, when the records up to ``offset`` were
    read but not all written: what the store's ``apply_changelog_batch`` sets for those it
    writes."""
    table.data.set_persisted_offset(tp, offset)


class UnstableOffsetCommit(aiokafka_errors.KafkaError):  # type: ignore[misc]
    """A transaction that commits offsets of the partition is still open: ask again."""

    retriable = True


#: How long a new owner waits for a transaction that commits offsets of its partitions.
#: Past it the transaction's owner is taken to be gone or frozen (a zombie, fenced at its next
#: commit): the last committed offsets are read, as before KIP-447. Waiting for the broker to
#: abort it (``KARROT_TRANSACTION_TIMEOUT_S``) would stop the partitions for that long.
STABLE_WAIT_S = 10.0


def fetch_stable_offsets(
    consumer: Any,
    wait_s: float = STABLE_WAIT_S,
    *,
    fence: Callable[[str], Awaitable[None]] | None = None,
    own_id: str | None = None,
) -> None:
    """Make a started aiokafka consumer read its group's committed offsets with OffsetFetch v7
    ``require_stable`` (KIP-447), waiting out (up to ``wait_s``) transactions that commit
    offsets of them.

    Past ``wait_s`` the transaction's owner is taken to be frozen (a worker paused past its
    session): with ``fence``, its transactional id (the metadata of its earlier offset
    commits, kip447) is fenced (``InitProducerId`` aborts its open transaction, and its own
    EndTxn is refused when it wakes), and the stable offsets are asked again. Without an id to
    fence, or still open ``wait_s`` after the fence, the last committed offsets are read, as
    before KIP-447.

    Replaces the consumer's ``GroupCoordinator._do_fetch_commit_offsets`` (instance attribute):
    aiokafka's ``fetch_committed_offsets`` retries what it raises when it is retriable.
    """
    coordinator = consumer._coordinator
    if coordinator is None or not hasattr(coordinator, "_do_fetch_commit_offsets"):
        return
    #: Per partition, since when its offsets were found in an open transaction. Kept per
    #: partition, not per request: aiokafka asks for different sets of partitions in turn,
    #: and a wait counted per set would add up (four sets: 40 s behind one frozen worker).
    unstable_since: dict[Any, float] = {}
    #: Per partition, the transactional id fenced for it.
    fenced: dict[Any, str] = {}

    async def ask(partitions: list[Any], *, stable: bool) -> Any:
        request = kip447.StableOffsetFetchRequest(
            coordinator.group_id,
            [(tp.topic, tp.partition) for tp in partitions],
            require_stable=stable,
        )
        response = await coordinator._send_req(request)
        group_error = aiokafka_errors.for_code(response.error_code)
        if group_error is not aiokafka_errors.NoError:
            _raise_fetch_error(coordinator, group_error)
        return response

    async def fence_owners(waited: list[Any]) -> bool:
        """Fence the owners of the transactions ``waited`` waits for; whether one was."""
        if fence is None:
            return False
        owners: dict[str, list[Any]] = {}
        for fetched in kip447.fetched_offsets(await ask(waited, stable=False)):
            tp = TopicPartition(fetched.topic, fetched.partition)
            owner = fetched.metadata or ""
            if owner.startswith(TRANSACTIONAL_ID_PREFIX) and owner != own_id and tp not in fenced:
                owners.setdefault(owner, []).append(tp)
        for owner, tps in owners.items():
            log.warning(
                "Offsets of %s stayed in an open transaction for %.0f s: fencing %s, their last"
                " committer (a worker frozen past its session?), so that it can never commit it",
                sorted(tps),
                wait_s,
                owner,
            )
            await fence(owner)
            now = time.monotonic()
            for tp in tps:
                fenced[tp] = owner
                unstable_since[tp] = now  # its abort's markers: asked again, as before
        return bool(owners)

    async def fetch(partitions: Iterable[Any]) -> dict[Any, OffsetAndMetadata]:
        partitions = list(partitions)
        now = time.monotonic()
        waited = [tp for tp in partitions if now - unstable_since.get(tp, now) >= wait_s]
        if waited and await fence_owners(waited):
            raise UnstableOffsetCommit(f"offsets of {sorted(waited)}: their owner was fenced")
        stable = not waited
        if not stable:
            log.warning(
                "Offsets of %s stayed in an open transaction for %.0f s: reading the last"
                " committed ones (the transaction's owner is gone or frozen)",
                sorted(waited),
                wait_s,
            )
        offsets, unstable = _committed_or_unstable(
            coordinator, await ask(partitions, stable=stable)
        )
        if unstable:
            for tp in unstable:
                unstable_since.setdefault(tp, now)
            raise UnstableOffsetCommit(f"offsets of {sorted(unstable)} are in an open transaction")
        for tp in partitions:
            unstable_since.pop(tp, None)
            fenced.pop(tp, None)
        return offsets

    coordinator._do_fetch_commit_offsets = fetch


def _committed_or_unstable(
    coordinator: Any, response: Any
) -> tuple[dict[Any, OffsetAndMetadata], list[Any]]:
    """An OffsetFetch answer: the committed offsets, and the partitions whose offsets are in
    an open transaction."""
    offsets: dict[Any, OffsetAndMetadata] = {}
    unstable = []
    for fetched in kip447.fetched_offsets(response):
        tp = TopicPartition(fetched.topic, fetched.partition)
        if fetched.error_code == kip447.UNSTABLE_OFFSET_COMMIT:
            unstable.append(tp)
            continue
        if fetched.error_code:
            error = aiokafka_errors.for_code(fetched.error_code)
            if error is aiokafka_errors.UnknownTopicOrPartitionError:
                continue
            _raise_fetch_error(coordinator, error)
        if fetched.offset >= 0:
            offsets[tp] = OffsetAndMetadata(fetched.offset, fetched.metadata or "")
    return offsets, unstable


def _raise_fetch_error(coordinator: Any, error: type[Exception]) -> None:
    # aiokafka's handling of the same codes in _do_fetch_commit_offsets.
    if error is aiokafka_errors.NotCoordinatorForGroupError:
        coordinator.coordinator_dead()
    if error is aiokafka_errors.GroupAuthorizationFailedError:
        raise error(coordinator.group_id)
    if error in (
        aiokafka_errors.GroupLoadInProgressError,
        aiokafka_errors.NotCoordinatorForGroupError,
    ):
        raise error()
    raise aiokafka_errors.KafkaError(repr(error()))
