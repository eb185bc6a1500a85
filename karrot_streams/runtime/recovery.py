"""Table recovery that takes the changelog records a fetch delivered together, together.

Faust's ``Recovery._slurp_changelogs`` (faust-streaming 0.15.3) handles one record per loop
iteration: an ``asyncio.wait_for`` (a task) around each ``queue.get()``, two debug f-strings
formatted whether or not debug is on, and after each record a recomputation of every
partition's remaining offsets to see whether recovery is over. Profiled on the bench's
recovery run that loop was most of the worker's CPU, at ~23,000 records/s.

This one waits for the first record, takes whatever else is queued without waiting, and
applies the same rules to each record (a record at or below the offset already taken for its
partition is skipped; the buffer of a table is written to RocksDB once it holds the table's
``recovery_buffer_size``); the end-of-recovery check and the standby check run once per run.
The store writes are Faust's own ``apply_changelog_batch``, so the table data and persisted
offsets are exactly what Faust's loop leaves.

A table can be given a judge (:func:`judge_recovery`): a changelog record then never replaces
its key's value when the judge finds it older. A worker paused past its session timeout can
resume and write its stale values to the changelog after the new owner's newer ones; replayed
in offset order they would win. The judge sees the current value (written before in this
buffer, else the store's) and the incoming one as stored, when a buffer is written.

Two of the original loop's oddities are not kept: a record of a partition that is neither
active nor standby is skipped (the original applied it to the previous record's table), and a
standby partition's last-record time is updated on every record (the original set it once).

Overrides a private method of Faust; ``tests/unit/runtime/test_internals.py`` checks the names
it relies on. Pinned versions: runtime/internals.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from enum import Enum
from time import monotonic
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from faust.utils.tracing import finish_span
from mode import Service

from karrot_streams.runtime import internals

log = logging.getLogger(__name__)

#: Records taken from the changelog queue per run; the queue itself holds fewer.
RUN_MAX = 50_000
#: Changelog records held between the consumer and the recovery: ~5 MiB of seller values.
CHANGELOG_QUEUE_MAX = 32_768
#: Faust's wait for the next changelog record before it checks whether recovery is over.
IDLE_CHECK_S = 5.0
#: The same wait while a partition is short of its highwater. Changelogs are written in
#: transactions under exactly-once: the offsets at their end may be transaction markers, which
#: no record fills, so only the consumer's position can tell that the partition is read.
MARKER_CHECK_S = 0.3
#: How long recovery asks again for a highwater below a persisted offset (a transaction's
#: markers not written yet), and how often; under exactly-once, up to the transaction timeout.
HIGHWATER_SETTLE_S = 10.0
HIGHWATER_RETRY_S = 0.2
#: The broker checks for timed-out transactions this often (its
#: ``transaction.abort.timed.out.transaction.cleanup.interval.ms``, 10 s by default).
TRANSACTION_ABORT_CHECK_S = 10.0


class Verdict(Enum):
    """What a changelog record does to the value its key already has."""

    TAKE = "take"  # replaces it
    KEEP = "keep"  # is older: the value stays
    CONFLICT = "conflict"  # neither is older: replaces it (nothing to merge them with), counted


#: A table's judge: the verdict on a changelog value (second) against the value its key has
#: (first), both as stored. Never asked about a tombstone, a missing value or equal bytes.
Judge = Callable[[bytes, bytes], Verdict]


def judge_recovery(app: Any, table: Any, judge: Judge) -> None:
    """Recover ``table`` with ``judge`` deciding between two values of a key (a no-op for an
    app without the bulk recovery)."""
    manager = app.tables
    if isinstance(manager, BulkTableManager):
        manager.judges[table] = judge


class BulkRecovery(Recovery):
    """Faust's recovery service with the changelog loop taking runs of records."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Faust keeps the last 1,000 per-record times for its remaining-time estimate and
        # trims by hand; a bounded deque does the same with one extend per run.
        self._processing_times = deque(maxlen=self.num_samples_required_for_estimate)
        #: Changelog records kept out of the tables as older than their key's value, since start.
        self.stale_records = 0
        #: Records taken though neither older nor newer than their key's value, since start.
        self.conflicting_records = 0
        #: Changelog records taken for active partitions (their recovery) and for standbys,
        #: since start: what a restart on its volume did not have to read again.
        self.active_records_read = 0
        self.standby_records_read = 0
        # The manager's own dict, not a copy: a table declared after the recovery was built
        # still gets its judge.
        self._judges: dict[Any, Judge] = (
            self.tables.judges if isinstance(self.tables, BulkTableManager) else {}
        )
        #: Per table name, the stale and conflicting records not yet logged.
        self._unreported: dict[str, list[int]] = {}

    @Service.task
    async def _slurp_changelogs(self) -> None:
        queue = self.tables.changelog_queue
        idle_checks = 0
        while not self.should_stop:
            try:
                self.signal_recovery_end.clear()
                idle_s = MARKER_CHECK_S if self._short_of_highwater() else IDLE_CHECK_S
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=idle_s)
                except TimeoutError:
                    idle_checks += 1
                    await self._end_if_recovered(idle_checks)
                    continue
                idle_checks = 0
                run = [first]
                while len(run) < RUN_MAX:
                    try:
                        run.append(queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                await self._apply_run(run)
                await self._end_if_recovered(0)
                if self._standbys_span is None and self.tables.standbys_ready:
                    continue
                if not self.standby_remaining_total():
                    if self._standbys_span:
                        self._finish_standbys_span()
                    self.tables.on_standbys_ready()
            except Exception as exc:  # noqa: BLE001  Faust's loop logs and goes on the same way
                log.warning("Error in recovery %r", exc)

    async def _apply_run(self, run: list[Any]) -> None:
        now = monotonic()
        active_tps = self.active_tps
        standby_tps = self.standby_tps
        tp_to_table = self.tp_to_table
        buffers = self.buffers
        sizes = self.buffer_sizes
        active_taken = taken = 0
        for event in run:
            message = event.message
            tp = message.tp
            if tp in active_tps:
                offsets = self.active_offsets
                self._active_events_received_at[tp] = now
                is_active = True
            elif tp in standby_tps:
                offsets = self.standby_offsets
                self._standby_events_received_at[tp] = now
                is_active = False
            else:
                log.warning("Recovery got a record of %s, neither active nor standby", tp)
                continue
            table = tp_to_table[tp]
            seen = offsets.get(tp)
            offset = message.offset
            if seen is not None and offset <= seen:
                continue
            offsets[tp] = offset
            buffer = buffers[table]
            buffer.append(event)
            await table.on_changelog_event(event)
            size = sizes.get(tp)
            if size is None:
                size = sizes[tp] = (
                    table.recovery_buffer_size if is_active else table.standby_buffer_size
                )
            if len(buffer) >= size:
                self._write(table, buffer)
                buffer.clear()
                self._last_flush_at = now
            active_taken += is_active
            taken += 1
        self.active_records_read += active_taken
        self.standby_records_read += taken - active_taken
        if active_taken:
            # Faust's remaining-time estimate averages per-record times: this run's, each.
            done = monotonic()
            self._processing_times.extend([(done - now) / active_taken] * active_taken)
            self._last_active_event_processed_at = done
        self._report_judged()

    def flush_buffers(self) -> None:
        for table, buffer in self.buffers.items():
            self._write(table, buffer)
            buffer.clear()
        self._last_flush_at = monotonic()
        self._report_judged()

    def _write(self, table: Any, buffer: list[Any]) -> None:
        judge = self._judges.get(table) if buffer else None
        if judge is None:
            table.apply_changelog_batch(buffer)
            return
        kept = self._newest(table, buffer, judge)
        table.apply_changelog_batch(kept)
        if len(kept) < len(buffer):
            # The store moves its recovery start to the last record it writes; what was read
            # after that and kept out must not be read again at the next start.
            last: dict[TP, int] = {}
            for event in buffer:
                last[event.message.tp] = event.message.offset
            for tp, offset in last.items():
                internals.persist_recovered_offset(table, tp, offset)

    def _newest(self, table: Any, batch: list[Any], judge: Judge) -> list[Any]:
        """Of ``batch``, the records that replace their key's value: per key, the last one
        taken, which leaves the store as taking them one by one would."""
        # Per partition, per key: its value as the records so far leave it.
        held: dict[int, dict[bytes, bytes | None]] = {}
        for event in batch:
            message = event.message
            values = held.get(message.partition)
            if values is None:
                values = held[message.partition] = {}
            values[message.key] = None
        for partition, values in held.items():
            keys = list(values)
            stored = internals.stored_values(table, partition, keys)
            if stored is not None:
                values.update(zip(keys, stored, strict=True))
        kept: dict[tuple[int, bytes], Any] = {}
        stale = conflicts = 0
        for event in batch:
            message = event.message
            values = held[message.partition]
            key = message.key
            value = message.value
            current = values[key]
            if value is not None and current is not None and value != current:
                verdict = judge(current, value)
                if verdict is Verdict.KEEP:
                    stale += 1
                    continue
                if verdict is Verdict.CONFLICT:
                    conflicts += 1
            values[key] = value
            kept[message.partition, key] = event
        if stale or conflicts:
            self.stale_records += stale
            self.conflicting_records += conflicts
            counts = self._unreported.setdefault(table.name, [0, 0])
            counts[0] += stale
            counts[1] += conflicts
        return list(kept.values())

    def _report_judged(self) -> None:
        if not self._unreported:
            return
        for name, (stale, conflicts) in self._unreported.items():
            if conflicts:
                log.warning(
                    "Recovery of table %s took %d changelog records neither older nor newer "
                    "than their key's value (different sources ahead): counts of one side may "
                    "be missing",
                    name,
                    conflicts,
                )
            if stale:
                log.info(
                    "Recovery of table %s kept %d changelog records older than their key's "
                    "value out (a late writer's)",
                    name,
                    stale,
                )
        self._unreported.clear()

    async def _build_highwaters(
        self, consumer: Any, tps: set[Any], destination: Any, title: str
    ) -> None:
        """Faust's highwaters, asked again while one is below its table's persisted offset.

        Under exactly-once a persisted offset moves when its transaction commits, and the last
        stable offset that ``read_committed`` gives as the highwater can stay below it:

        * the broker writes a commit's markers just after it answers, so a rebalance that
          follows a commit (the revoke callback commits) can ask before they are written;
        * a transaction another producer left open on the partition holds the last stable
          offset at its first record until it ends: a worker paused past its session (a
          zombie) that wrote this changelog before its partitions moved here. It aborts when it
          wakes and finds its generation gone, or the broker aborts it at the transaction
          timeout.

        Faust would stop the worker with a ConsistencyError. The store holds only committed
        writes (runtime/transactional_store.py), so the highwater is asked again until it passes
        the persisted offset, for up to the transaction timeout; only a changelog still behind
        after that is inconsistent. The persisted offsets are the tables' own: Faust builds the
        active highwaters before it reads them into its offsets.
        """
        persisted = self._persisted_offsets(tps)
        deadline = monotonic() + self._highwater_settle_s()
        warned = False
        while True:
            await super()._build_highwaters(consumer, tps, destination, title)
            behind = {
                tp: offset
                for tp, offset in persisted.items()
                if destination.get(tp) is not None and offset > destination[tp]
            }
            if not behind or monotonic() >= deadline:
                return
            if not warned:
                warned = True
                log.warning(
                    "Changelog end (last stable offset) below the persisted offset of %s: a "
                    "transaction still open there; asking again for up to %.0f s",
                    {tp: (destination[tp], offset) for tp, offset in behind.items()},
                    deadline - monotonic(),
                )
            persisted = behind
            tps = set(behind)
            await asyncio.sleep(HIGHWATER_RETRY_S)

    def _persisted_offsets(self, tps: set[Any]) -> dict[Any, int]:
        offsets = {}
        for tp in tps:
            table = self.tp_to_table.get(tp)
            offset = table.persisted_offset(tp) if table is not None else None
            if offset is not None:
                offsets[tp] = offset
        return offsets

    def _highwater_settle_s(self) -> float:
        """How long a highwater below a persisted offset is asked again: an open transaction's
        lifetime at most (the broker's timeout, plus its abort check), within Faust's own
        timeout for the step; a few seconds for a commit's markers otherwise."""
        transactions = getattr(self.app, "transactions", None)
        if transactions is None or not getattr(transactions, "exactly_once", False):
            return HIGHWATER_SETTLE_S
        timeout_s: float = transactions.timeout_s
        return max(
            HIGHWATER_SETTLE_S,
            min(
                timeout_s + TRANSACTION_ABORT_CHECK_S,
                float(self.app.conf.broker_request_timeout) - HIGHWATER_RETRY_S * 10,
            ),
        )

    async def _end_if_recovered(self, idle_checks: int) -> None:
        """Faust's end-of-recovery check: with every active partition at its highwater, what
        the buffers hold is written and recovery is signalled over."""
        # Only once the queue stayed empty for a wait: until then the consumer's position can
        # be ahead of records it fetched and has not queued yet.
        if idle_checks >= 1:
            await self._skip_transaction_markers()
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()

    def _short_of_highwater(self) -> bool:
        return bool(self.active_remaining_total() or self.standby_remaining_total())

    async def _skip_transaction_markers(self) -> None:
        """Partitions read past their highwater, with every record read before that taken, are
        recovered: the offsets left are transaction markers (or aborted records, which
        ``read_committed`` never delivers). Faust does this under its own exactly-once only,
        after two idle checks, from the consumer's position, which can be ahead of records the
        consumer fetched and has not queued yet (records lost to the recovery): the batch
        consumer says how far it put every record on the queue (runtime/consumer.py)."""
        consumer = self.app.consumer
        read_to = getattr(consumer, "changelog_read_to", None)
        if read_to is None or not self.tables.changelog_queue.empty():
            return
        delivered = internals.read_offset(consumer)
        for offsets, highwaters in (
            (self.active_offsets, self.active_highwaters),
            (self.standby_offsets, self.standby_highwaters),
        ):
            for tp, highwater in highwaters.items():
                taken = offsets.get(tp)
                if highwater is None or taken is None or taken >= highwater:
                    continue
                position = read_to(tp)
                last_delivered = delivered.get(tp)
                if position is None or position <= highwater:
                    continue
                if last_delivered is not None and taken < last_delivered:
                    continue  # a record on its way: not all of it is taken yet
                log.debug("Transaction markers up to the highwater of %s", tp)
                offsets[tp] = highwater

    def _finish_standbys_span(self) -> None:
        finish_span(self._standbys_span)
        self._standbys_span = None


class BulkTableManager(TableManager):
    """Faust's table manager with :class:`BulkRecovery` as its recovery service, and a
    changelog queue that holds a whole fetch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Per table, the judge its recovery asks (see :func:`judge_recovery`).
        self.judges: dict[Any, Judge] = {}

    @property
    def changelog_queue(self) -> Any:
        # Faust sizes it like an agent's queue (``stream_buffer_maxsize``, 4,096 here). A fetch
        # brings up to ~5,000 records per partition; with the queue full, the consumer takes the
        # partitions out of the fetch until there is room, and each one then waits for a fetch
        # round trip of its own.
        if self._changelog_queue is None:
            self._changelog_queue = self.app.FlowControlQueue(
                maxsize=max(self.app.conf.stream_buffer_maxsize, CHANGELOG_QUEUE_MAX),
                clear_on_resume=True,
            )
        return self._changelog_queue

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BulkRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
