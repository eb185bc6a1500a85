"""A Faust consumer that hands each fetch to the agents' queues in one step.

Faust's drain loop awaits every record through the conductor under a lock and inside
``wait_first`` (four tasks, an ``asyncio.wait`` and three cancellations per record). Here each
fetched partition's records are turned into events and put on their channels' queues without
awaiting, in one pass over the fetch, so no partition waits behind another's full queue.

Whenever Faust empties the queues (``flow_control.clear()``, on a rebalance and when the flow
resumes after one), what was delivered and not yet taken is gone while the fetch position is past
it. Faust's own loop has the same race with its seek: records fetched while the recovery seeks
are delivered, then cleared, and the partition reads on from after them. For a source that is a
hole never acked (commits stop) or a jump Faust takes for a compacted gap (committed unread); for
a changelog, a hole in the table. Here, before it delivers anything after a clear, the loop puts
every partition back where those records are read again: a source at its commit (or, without
one, at the first offset it delivered), a changelog where the recovery took its last record.
What was taken already is processed twice at most, which the event store, the aggregates'
replay guard and the recovery's seen-offset check absorb.

What still blocks goes the stock way or waits its turn:

* flow stopped (a rebalance) or another generation: the rest of the fetch is dropped, as Faust's
  ``getmany`` drops it; the partitions are read again from their committed offsets (a seek that
  fails because the rebalance took a partition away is logged, as Faust logs it);
* a full queue: what does not fit waits in order in ``_pending`` for its partition, which is
  taken out of the fetch (``on_buffer_full``) until its queue has drained it;
* Faust's producer buffer over its limit: delivery waits for it to ebb, as Faust's does;
* a topic the runtime does not know (no subscribed channel, or a channel that deserialises):
  the stock per-record callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, ClassVar, cast

from faust.types import TP

from karrot_streams.runtime import internals

log = logging.getLogger(__name__)

RAW = "raw"
#: Fetch wait while some partition still has records waiting for room in its queue.
PENDING_POLL_S = 0.005


def _is_raw(channel: Any) -> bool:
    return getattr(channel, "key_serializer", None) == RAW and (
        getattr(channel, "value_serializer", None) == RAW
    )


class ChangelogRecord:
    """A changelog record as the recovery reads it: its own event and message.

    Faust builds a ``ConsumerMessage`` and an ``Event`` for each record (with a reference
    count, sizes and timings nobody reads for a changelog): two thirds of the worker's CPU
    while it recovers a table. The recovery and the store read the partition, offset, key and
    value of ``event.message``; the consumer its ``generation_id``.
    """

    __slots__ = (
        "generation_id",
        "headers",
        "key",
        "offset",
        "partition",
        "timestamp",
        "topic",
        "tp",
        "value",
    )

    def __init__(self, tp: TP, record: Any, generation_id: int) -> None:
        self.tp = tp
        self.topic = tp.topic
        self.partition = tp.partition
        self.offset = record.offset
        self.key = record.key
        self.value = record.value
        self.headers = record.headers
        # Faust's unit: seconds (aiokafka's is milliseconds).
        self.timestamp = record.timestamp / 1000.0 if record.timestamp is not None else None
        self.generation_id = generation_id

    @property
    def message(self) -> ChangelogRecord:
        return self


class BatchDeliveryConsumer(internals.consumer_class()):  # type: ignore[misc]
    """Faust's aiokafka consumer with a drain loop that delivers a fetch at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Per partition, (queue, event) pairs fetched but not yet let into a full queue.
        self._pending: dict[TP, deque[tuple[Any, Any]]] = {}
        #: Partitions this loop took out of the fetch (``on_buffer_full``) for their pending.
        self._held: set[TP] = set()
        #: The queues were emptied since the last seek: read again from the committed offsets.
        self._reread = False
        #: Per source partition, the first offset delivered since it was assigned: where it is
        #: read again from while the group has committed nothing there (Faust's seek places
        #: only partitions with a commit above 0; a new partition's first records would be
        #: passed over).
        self._origin: dict[TP, int] = {}
        #: Per changelog partition, the fetch position once every record fetched before it was
        #: on the recovery's queue: what lies between the last record and this position are
        #: transaction markers (or aborted records), which no record fills.
        self._changelog_read_to: dict[TP, int] = {}
        #: Partitions whose records were taken out of a fetch: the offset to read again from.
        self._later: dict[TP, int] = {}
        internals.on_queues_cleared(self.app, self._queues_cleared)

    async def _drain_messages(self, fetcher: Any) -> None:
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if self._pending:
                    self._flush_pending()
                    if self._pending and not self._get_active_partitions():
                        await asyncio.sleep(PENDING_POLL_S)
                        continue
                timeout = PENDING_POLL_S if self._pending else 1.0
                records, active = await internals.next_records(self, timeout)
                # Lets other tasks run even when every fetch returns at once.
                await asyncio.sleep(0)
                if records is not None and not self.should_stop:
                    await self._take_fetch(records, active)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception:
            self.log.exception("Drain messages raised")
            raise

    async def _take_fetch(self, records: Any, active: set[TP] | None) -> None:
        if not self.flow_active:
            await self._seek_to_committed()
        elif self._reread:
            # This fetch may be from before the clear: what the seek placed again is read
            # again; the rest of it is delivered now.
            sought = await self._read_again()
            if records:
                await self._deliver_fetch(records, active, sought=sought)
        elif records:
            # Records of a partition sought just now were fetched before the seek: read again.
            later = await self._seek_later() if self._later else None
            await self._deliver_fetch(records, active, sought=later)
        else:
            # No record of any partition, yet a changelog's position may have moved past its
            # end in this fetch: aiokafka returns no partition whose fetch held only
            # transaction markers or aborted records. Noted only after fetches with records,
            # such a partition kept an older position and its recovery never ended.
            later = await self._seek_later() if self._later else set()
            if self.flow_active and self.app.flow_control.is_active():
                self._note_changelogs_read(active, later)

    def _queues_cleared(self) -> None:
        self._reread = True
        self._pending.clear()
        self._changelog_read_to.clear()
        self._later.clear()  # the clear's seek places every partition

    def readable_end(self, tp: TP, end: int) -> int:
        """The end of ``tp`` a commit can reach, for lag: ``end`` (a highwater) capped at the
        last stable offset, and once the fetch is there, the offset after the last record
        delivered. Under read_committed the offsets after the last record may be transaction
        markers, which no record fills and no acknowledgement commits."""
        consumer = internals.aiokafka_consumer(self)
        stable = internals.last_stable_offset(consumer, tp)
        if stable is not None and stable >= 0:
            end = min(end, stable)
        position = internals.fetch_position(consumer, tp)
        last = internals.read_offset(self).get(tp)
        if position is not None and last is not None and position >= end and last < end:
            return last + 1
        return end

    def changelog_read_to(self, tp: TP) -> int | None:
        """Where the changelog partition ``tp`` is read to: every record before this offset
        was put on the recovery's queue (``None``: not known now)."""
        return self._changelog_read_to.get(tp)

    async def _read_again(self) -> set[TP]:
        """After a clear: held partitions back in the fetch, and every partition whose records
        the queues may have lost placed where it is read again from. Returns those partitions.

        * an agent's source with a commit above 0: its commit (Faust's own seek);
        * a source without one: the first offset delivered since it was assigned;
        * a changelog being recovered or kept as a standby: the last offset the recovery took,
          as Faust's recovery seeks it (the recovery skips what it has seen, so a record the
          clear took would otherwise be a hole in the table).
        """
        self._reread = False
        assigned = self.assignment()
        paused = internals.paused_partitions(self)
        buffered = internals.buffered_partitions(self)
        active = self._get_active_partitions()
        for tp in self._held:
            buffered.discard(tp)
            if tp in assigned and tp not in paused:
                active.add(tp)
        self._held.clear()
        if not await self._seek_to_committed():
            self._reread = True  # a rebalance is under way: try again, deliver none of it
            return set(assigned)
        read_offsets = internals.read_offset(self)
        places = {tp: off for tp, off in self._origin.items() if not read_offsets.get(tp)}
        places.update(internals.changelog_positions(self.app))
        sought: set[TP] = set()
        for tp in assigned:
            placed = bool(read_offsets.get(tp))  # Faust's seek placed it at its commit
            if placed or (tp in places and await self._seek_to(tp, places[tp])):
                sought.add(tp)
        return sought

    def _read_later(self, tp: TP, offset: int) -> None:
        """Records of a partition taken out of the fetch while the fetch was on its way (the
        recovery pauses the streams as it starts) are dropped, and read again after a seek of
        that partition to the first of them, before the next fetch is delivered.

        Faust drops them too and counts on its next seek, which places only partitions with a
        commit: a new partition's first records were passed over for good. A seek of every
        partition to its commit (what a clear takes) would do, but it also reads again what
        is in flight since the last commit, and that is produced twice: under exactly-once
        both copies would reach a read_committed reader.
        """
        if tp.topic in internals.acked_topics(self.app):
            self._origin.setdefault(tp, offset)
        current = self._later.get(tp)
        self._later[tp] = offset if current is None else min(current, offset)

    async def _seek_later(self) -> set[TP]:
        """The partitions :meth:`_read_later` noted, each sought to its first dropped record."""
        later, self._later = self._later, {}
        assigned = self.assignment()
        sought: set[TP] = set()
        for tp, offset in later.items():
            if tp in assigned and await self._seek_to(tp, offset):
                sought.add(tp)
        return sought

    async def _seek_to_committed(self) -> bool:
        """Back to the committed offsets, as Faust's ``getmany`` does when the flow stops.

        A rebalance can take a partition away while the seek runs (aiokafka raises
        ``IllegalStateError``); the assignment that follows seeks again, so that is only logged,
        as Faust logs it, instead of crashing the fetcher.
        """
        try:
            await self.perform_seek()
        except self.consumer_stopped_errors:
            raise
        except Exception as exc:  # noqa: BLE001  Faust's own tolerance, kept as it is
            self.log.warning("Seek to the committed offsets failed: %r", exc)
            return False
        return True

    async def _seek_to(self, tp: TP, offset: int) -> bool:
        try:
            await self.seek(tp, offset)
        except self.consumer_stopped_errors:
            raise
        except Exception as exc:  # noqa: BLE001  as in _seek_to_committed
            self.log.warning("Seek of %s to %s failed: %r", tp, offset, exc)
            return False
        return True

    async def _deliver_fetch(
        self, records: Any, active: set[TP] | None, *, sought: set[TP] | None = None
    ) -> None:
        """Put a fetch's records on their queues, but for the ``sought`` partitions: a seek has
        just placed them before these records, which are read again."""
        app = self.app
        generation_id = app.consumer_generation_id
        await app.producer.buffer.wait_until_ebb()
        buffered = internals.buffered_partitions(self)
        sources = internals.acked_topics(app)
        changelogs = app.tables.changelog_topics
        read_to = self._changelog_read_to
        passed_over: set[TP] = set()
        for fetched_tp, tp_records in records.items():
            # aiokafka's TopicPartition; Faust's partition sets take only its own TP.
            tp = TP(fetched_tp.topic, fetched_tp.partition)
            if not (self.flow_active and app.flow_control.is_active()):
                read_to.clear()
                return  # a rebalance began: the rest is read again after it
            if app.consumer_generation_id != generation_id:
                read_to.clear()
                return
            passed_over.add(tp)
            # Sought just now, or cleared while this fetch was handled (the next pass seeks):
            # these records are read again. A source nothing else places is read again from
            # where they begin.
            if (sought is not None and tp in sought) or (
                self._reread and (tp.topic in sources or tp.topic in changelogs)
            ):
                if tp_records and tp.topic in sources:
                    self._origin.setdefault(tp, tp_records[0].offset)
                continue
            if active is not None and tp not in active and tp not in buffered:
                if tp_records:
                    self._read_later(tp, tp_records[0].offset)
                continue
            if not tp_records:
                continue
            app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in changelogs and self._only_recovery_reads(tp):
                self._deliver_changelog(tp, tp_records, generation_id)
                passed_over.discard(tp)
                continue
            messages = [self._to_message(tp, record) for record in tp_records]
            fresh = await self._advance_read_offset(tp, messages)
            if fresh:
                await self._deliver(tp, fresh)

        self._note_changelogs_read(active, passed_over)

    def _note_changelogs_read(self, active: set[TP] | None, passed_over: set[TP]) -> None:
        """After a fetch, with or without records: the changelog partitions of the fetch whose
        records all reached the recovery's queue are read to the consumer's position (markers
        and aborted records included). The position moves only as aiokafka hands out a
        partition's records (all of them delivered here, or held in ``_pending``, or passed
        over and sought again) or by a seek, so no record before it is still on its way."""
        read_to = self._changelog_read_to
        changelogs = self.app.tables.changelog_topics
        fetched = [tp for tp in active or () if tp.topic in changelogs]
        if not fetched:
            return
        consumer = internals.aiokafka_consumer(self)
        for tp in fetched:
            if tp in passed_over or tp in self._pending or not self._only_recovery_reads(tp):
                read_to.pop(tp, None)
                continue
            position = internals.fetch_position(consumer, tp)
            if position is None:
                read_to.pop(tp, None)
            else:
                read_to[tp] = position

    def _only_recovery_reads(self, tp: TP) -> bool:
        channels = internals.subscribed_channels(self.app, tp.topic)
        queue = self.app.tables.changelog_queue
        return bool(channels) and all(c.queue is queue for c in channels)

    def _deliver_changelog(self, tp: TP, records: list[Any], generation_id: int) -> None:
        """A changelog partition's run of records onto the recovery's queue, in order; what
        does not fit waits in ``_pending`` like any partition's."""
        read_offsets = internals.read_offset(self)
        last = read_offsets.get(tp)
        queue = self.app.tables.changelog_queue
        pending = self._pending.get(tp)
        for record in records:
            offset = record.offset
            if last is not None and offset < last:
                continue  # delivered already (Faust's read-offset rule)
            last = offset
            event = ChangelogRecord(tp, record, generation_id)
            if pending is None and not queue.full():
                queue.put_nowait(event)
                continue
            if pending is None:
                pending = self._pending[tp] = deque()
                self.on_buffer_full(tp)
                self._held.add(tp)
            pending.append((queue, event))
        read_offsets[tp] = last

    async def _advance_read_offset(self, tp: TP, messages: list[Any]) -> list[Any]:
        """Faust's per-record offset bookkeeping, for a partition's run of records."""
        read_offsets = internals.read_offset(self)
        acks_enabled = tp.topic in internals.acked_topics(self.app)
        fresh = []
        for message in messages:
            offset = message.offset
            r_offset = read_offsets.get(tp)
            if r_offset is None or offset >= r_offset:
                # The offsets between the last record read (or, for the first record since the
                # assignment, the committed offset) and this one are transaction markers or
                # aborted records, which no ack fills. Faust's own test, ``r_offset and ...``,
                # leaves them out after a record at offset 0 and at the first record.
                start = r_offset + 1 if r_offset is not None else self._committed_of(tp)
                if acks_enabled and start is not None and offset > start:
                    # Up to the offset before: Faust's gap is inclusive and is passed the
                    # record's own offset, which once acked was twice in the acked list;
                    # Faust's run of consecutive offsets stops at the repeat, so each commit
                    # took one run and the commits fell behind the acks of every topic written
                    # in transactions (a marker per transaction).
                    await internals.add_gap(self, tp, start, offset - 1)
                read_offsets[tp] = offset
                fresh.append(message)
        if fresh and acks_enabled and tp not in self._origin:
            self._origin[tp] = fresh[0].offset
        return fresh

    def _committed_of(self, tp: TP) -> int | None:
        committed: int | None = internals.committed_at_assignment(self).get(tp)
        return committed

    async def _deliver(self, tp: TP, messages: list[Any]) -> None:
        channels = internals.subscribed_channels(self.app, tp.topic)
        # Recovery applies a changelog record's own bytes; its key and value need no decoding.
        changelogs = self.app.tables.changelog_queue
        if not channels or not all(_is_raw(c) or c.queue is changelogs for c in channels):
            for message in messages:
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
            return
        create_event = self.app.create_event
        pending = self._pending.get(tp)
        for channel in channels:
            queue = channel.queue
            # A changelog record is never acked (its offsets are the recovery's, not a
            # commit's): no reference to count, and incref takes Faust's global ack lock.
            counted = queue is not changelogs
            for message in messages:
                if counted:
                    message.incref(1)
                event = create_event(message.key, message.value, message.headers, message)
                if pending is None and not queue.full():
                    queue.put_nowait(event)
                else:
                    if pending is None:
                        pending = self._pending[tp] = deque()
                        self.on_buffer_full(tp)
                        self._held.add(tp)
                    pending.append((queue, event))

    def _flush_pending(self) -> None:
        generation_id = self.app.consumer_generation_id
        for tp in list(self._pending):
            waiting = self._pending[tp]
            while waiting:
                queue, event = waiting[0]
                if event.message.generation_id != generation_id:
                    waiting.clear()  # fetched before a rebalance: read again from the commit
                    break
                if queue.full():
                    break
                queue.put_nowait(event)
                waiting.popleft()
            if not waiting:
                del self._pending[tp]
                self.on_buffer_drop(tp)
                self._held.discard(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._pending.pop(tp, None)
            self._origin.pop(tp, None)
        with internals.acks_kept_through_revoke(self, revoked):
            await super().on_partitions_revoked(revoked)


class BatchTransport(internals.transport_class()):  # type: ignore[misc]
    """Faust's aiokafka transport with the batch-delivery consumer."""

    Consumer: ClassVar[type[Any]] = cast(type[Any], BatchDeliveryConsumer)
