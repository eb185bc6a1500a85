"""Table stores that hold committed writes only: Kafka's KIP-892 transactional state stores.

Under exactly-once a step writes its table values while the worker's transaction is open, and
their changelog records commit or abort with it. Written straight into RocksDB, an aborted
value (a crash, a fenced zombie, a failed commit) would stay in the store with nothing in the
changelog behind it. Here a write made while the transaction is open goes into a buffer per
partition instead, which the store's reads see first (an overlay over RocksDB); when the
transaction commits, each partition's buffer and its changelog's persisted offset (where the
next recovery starts) go into its RocksDB database in one ``WriteBatch``, atomically; when it
aborts, the buffers are dropped. RocksDB therefore always holds a prefix of the committed
changelog up to its own persisted offset: a worker that dies between a commit and the flush
recovers the rest from the changelog (``read_committed``, from that offset), and a worker that
dies at any moment restarts on its volume without restoring its tables from scratch.

Recovery writes (Faust's ``apply_changelog_batch``), writes under at-least-once and writes made
while no transaction is open go straight into RocksDB, as Faust's store does. A partition given
up at a rebalance drops what it still buffers (the revoke callback commits first, so that is
nothing unless the commit failed): its database then stays at its persisted offset, and a later
owner, this worker too, reads the rest from the changelog.

Overrides private methods of Faust's RocksDB store (faust-streaming 0.15.3, rocksdict);
``tests/unit/runtime/test_internals.py`` checks the names it relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import rocksdict
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import current_event
from faust.types import TP

from karrot_streams.runtime import internals
from karrot_streams.runtime.transactions import transactions_of

log = logging.getLogger(__name__)

#: The store URL scheme of the worker's tables (``store=f"{SCHEME}://"``).
SCHEME = "karrot-rocksdb"

#: A buffered value; ``None`` deletes the key at the flush.
Pending = dict[bytes, bytes | None]


class TransactionalStore(RocksDBStore):
    """Faust's RocksDB store whose writes inside the worker's transaction wait for its commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_rocksdict:
            raise ValueError(f"{SCHEME}:// stores need rocksdict (its WriteBatch)")
        #: Per partition, the writes of the open transaction, by encoded key.
        self._pending: dict[int, Pending] = {}
        #: Per partition, the persisted offset the open transaction's changelog records move.
        self._pending_offsets: dict[int, int] = {}

    # -- the transaction --------------------------------------------------------------------

    def _in_transaction(self) -> bool:
        """Whether a write now waits for the worker's transaction (enlisting the store in it).

        Raises when the transaction failed: nothing may reach the store after an abort.
        """
        transactions = transactions_of(self.app)
        if not transactions.exactly_once:
            return False
        if transactions.failed is not None:
            raise transactions.failed
        if not transactions.open:
            return False
        if not self._pending and not self._pending_offsets:
            transactions.after_commit(("table store", id(self)), self.flush, self.discard)
        return True

    def persist_on_commit(self, tp: TP, offset: int) -> None:
        """Where recovery of ``tp`` starts, once the transaction holding the changelog records
        up to ``offset`` commits: written with the partition's buffered values. Outside a
        transaction, at once."""
        if not self._in_transaction():
            self.set_persisted_offset(tp, offset)
            return
        partition = tp.partition
        self._pending_offsets[partition] = max(offset, self._pending_offsets.get(partition, -1))

    def flush(self) -> None:
        """The committed transaction's writes into RocksDB: per partition, its values and its
        persisted offset in one atomic batch."""
        pending, self._pending = self._pending, {}
        offsets, self._pending_offsets = self._pending_offsets, {}
        for partition in pending.keys() | offsets.keys():
            batch = rocksdict.WriteBatch(raw_mode=True)
            for key, value in pending.get(partition, {}).items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            offset = offsets.get(partition)
            if offset is not None:
                batch.put(self.offset_key, str(offset).encode())
            self._db_for_partition(partition).write(batch)

    def discard(self) -> None:
        """The aborted transaction's writes, gone."""
        self._pending.clear()
        self._pending_offsets.clear()

    def pending_writes(self) -> int:
        return sum(len(writes) for writes in self._pending.values())

    # -- writes -----------------------------------------------------------------------------

    def _set(self, key: bytes, value: bytes | None) -> None:
        if not self._in_transaction():
            super()._set(key, value)
            return
        event = current_event()
        if event is None:  # Faust's rule: a table is written in its current event's partition
            raise RuntimeError(f"{self.table_name}: a write outside of any event")
        partition: int = event.message.partition
        self._db_for_partition(partition)  # open, as Faust's _set leaves it (reads, iteration)
        self._key_index[key] = partition
        self._pending.setdefault(partition, {})[key] = value

    def _del(self, key: bytes) -> None:
        # Faust deletes from every partition holding the key (an expired window's cleanup).
        if not self._in_transaction():
            super()._del(key)
            return
        known = self._key_index.get(key)
        partitions = [known] if known is not None and known in self._dbs else list(self._dbs)
        for partition in partitions:
            self._pending.setdefault(partition, {})[key] = None

    def revoke_partitions(self, table: Any, tps: set[TP]) -> None:
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                dropped = self._pending.pop(tp.partition, None)
                offset = self._pending_offsets.pop(tp.partition, None)
                if dropped or offset is not None:
                    log.warning(
                        "%s: partition %d revoked with %d uncommitted writes; dropped (its"
                        " changelog has them if their transaction commits)",
                        self.table_name,
                        tp.partition,
                        len(dropped or ()),
                    )
        super().revoke_partitions(table, tps)

    async def stop(self) -> None:
        # Faust stops the tables before the agents and the consumer: the last steps and the
        # last commit (whose flush writes here) come after. Its store drops its databases here
        # and reopens them on the next use; these stay open until the process ends.
        self.logger.info("Stopping; databases kept open for the last commit")

    def reset_state(self) -> None:
        self.discard()
        super().reset_state()

    # -- reads: the open transaction's writes over RocksDB -----------------------------------

    def _buffered(self, key: bytes) -> tuple[bool, bytes | None]:
        """Whether the open transaction wrote ``key`` (in the partition Faust would read), and
        the value it wrote (``None``: deleted)."""
        event = current_event()
        if event is not None and not self.table.is_global and not self.table.use_partitioner:
            writes = self._pending.get(event.message.partition)
            if writes is not None and key in writes:
                return True, writes[key]
            return False, None
        for writes in self._pending.values():
            if key in writes:
                return True, writes[key]
        return False, None

    def _get(self, key: bytes) -> bytes | None:
        if self._pending:
            buffered, value = self._buffered(key)
            if buffered:
                return value
        return super()._get(key)

    def _contains(self, key: bytes) -> bool:
        if self._pending:
            buffered, value = self._buffered(key)
            if buffered:
                return value is not None
        return super()._contains(key)

    def _active_dbs(self) -> Iterator[tuple[Any, Pending]]:
        """Faust's active databases, each with what the open transaction wrote to it."""
        partitions = {id(db): partition for partition, db in self._dbs.items()}
        for db in self._dbs_for_actives():
            yield db, self._pending.get(partitions[id(db)], {})

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        for db, writes in self._active_dbs():
            for key, value in self._visible_items(db):
                if key not in writes:
                    yield key, value
            for key, buffered in writes.items():
                if buffered is not None:
                    yield key, buffered

    def _iterkeys(self) -> Iterator[bytes]:
        for db, writes in self._active_dbs():
            for key in self._visible_keys(db):
                if key not in writes:
                    yield key
            for key, buffered in writes.items():
                if buffered is not None:
                    yield key

    def _itervalues(self) -> Iterator[bytes]:
        for _, value in self._iteritems():
            yield value

    def _size(self) -> int:
        return sum(1 for _ in self._iterkeys())


def register() -> None:
    """Make ``karrot-rocksdb://`` name this store (before the app builds its tables)."""
    internals.register_store(SCHEME, f"{__name__}:{TransactionalStore.__name__}")
