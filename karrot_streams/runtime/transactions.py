"""Exactly once: one Kafka transaction per worker per commit interval (Kafka Streams' EOS v2).

Every record a step causes (enriched events, facts, category effects, dead letters, table
changelog records, published and redriven events) and the input offsets the step consumed are
committed together, or not at all. The worker has one transactional producer (Faust's, made
transactional in :mod:`karrot_streams.runtime.kafka_clients`); its transactional id is stable
per worker (per data directory), so a restarted worker's first ``InitProducerId`` aborts whatever
transaction its previous run left open, and readers are not held up by it.

Steps and commits take turns through a gate: a step (a batch's produce, its acks and its table
writes) runs inside :meth:`WorkerTransactions.step`; a commit waits until no step is inside and
lets none in until the transaction has ended. So a commit's offsets are exactly the offsets of the
steps whose records are in the transaction.

The offsets go with the consumer's group metadata (KIP-447, :mod:`karrot_streams.runtime.kip447`):
a worker that lost its partitions while it was paused (a zombie) cannot commit them, and its
transaction aborts. Then, as Kafka Streams does for a migrated task, the worker goes on and
joins the group again; it reads its partitions from the committed offsets. Any other failure
of a transaction (a fenced producer, a failed step, a broker error) is final for this run of
the worker: it aborts and stops. Either way its table stores drop the transaction's writes,
which they hold until a commit (:mod:`karrot_streams.runtime.transactional_store`); the next
run starts from its stores and the committed changelogs. PostgreSQL stays outside: its writes
are idempotent by event id and status only moves forward.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from contextlib import asynccontextmanager, suppress
from time import monotonic
from typing import Any, TypeVar

from karrot_streams.runtime import internals
from karrot_streams.runtime.commit_timings import CommitTimings
from karrot_streams.runtime.kip447 import GroupMetadata

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Set inside a step: a send made by a step needs no second pass through the gate (the commit
#: waiting at the gate would wait for the step that waits for it).
_inside_step: contextvars.ContextVar[bool] = contextvars.ContextVar("inside_step", default=False)


class TransactionFailed(Exception):
    """The worker's transaction aborted or its producer was fenced: this run must end.

    ``abortable``: the transaction can be aborted and the worker go on while the group
    rebalances (its partitions are read again from the committed offsets). ``migrated``: the
    group no longer takes this member's commits (Kafka Streams' ``TaskMigratedException``):
    abortable whether or not the rebalance has begun here, since no commit of its acks can
    succeed before the worker joins again, and joining revokes every partition and forgets them.
    """

    def __init__(self, *args: object, abortable: bool = False, migrated: bool = False) -> None:
        super().__init__(*args)
        self.abortable = abortable or migrated
        self.migrated = migrated


class WorkerTransactions:
    """The gate between steps and commits, and the worker's open transaction."""

    def __init__(
        self,
        *,
        exactly_once: bool,
        transactional_id: str | None = None,
        producer: Callable[[], Any] | None = None,
        on_failure: Callable[[TransactionFailed], Awaitable[None]] | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.exactly_once = exactly_once
        self.transactional_id = transactional_id
        #: The broker aborts a transaction open longer than this (``transaction.timeout.ms``).
        self.timeout_s = timeout_s
        self._producer = producer
        self._on_failure = on_failure
        self._commit_lock = asyncio.Lock()
        #: Someone waits for the open transaction to commit (an API answer): commit now rather
        #: than at the end of the interval.
        self._commit_wanted = asyncio.Event()
        self._steps = 0
        self._no_steps = asyncio.Event()
        self._no_steps.set()
        self._gate_open = asyncio.Event()
        self._gate_open.set()
        self._begin_lock = asyncio.Lock()
        #: Resolved when the open transaction commits (an exception when it aborts).
        self._open: asyncio.Future[None] | None = None
        self.failed: TransactionFailed | None = None
        #: A step that raised (or was cancelled) inside the open transaction: it may have
        #: produced records it will never ack, which must not become visible without their
        #: offsets (they would be read again and produced again: duplicates).
        self._spoiled: BaseException | None = None
        #: What is done once the open transaction commits (a table store's writes and its
        #: changelog partitions' persisted offsets: recovery starts there, so they must never
        #: be ahead of what was committed), and what is done instead when it aborts.
        self._after_commit: dict[Hashable, Callable[[], None]] = {}
        self._after_abort: dict[Hashable, Callable[[], None]] = {}
        #: The consumer group generations whose records the open transaction's steps processed.
        #: It commits only in that generation: a member that lost its membership (a zombie,
        #: paused past its session) and joined again may no longer own those partitions, and
        #: the records may have been processed again by their new owner.
        self._generations: set[int] = set()
        #: Per source partition, the last offset the open transaction's stream steps acked. Its
        #: records' outputs are in the transaction: it commits only with offsets past them.
        self._consumed: dict[Any, int] = {}
        #: While true (a rebalance), a transaction that cannot commit its steps' offsets is
        #: aborted and the worker goes on: the partitions are read again from the committed
        #: offsets once they are assigned. Otherwise the worker stops.
        self._rebalancing: Callable[[], bool] = lambda: False
        self.commits = 0
        #: Transactions aborted without stopping the worker (see :meth:`commit`).
        self.aborts = 0
        self.timings = CommitTimings()

    def bind(
        self,
        producer: Callable[[], Any],
        on_failure: Callable[[TransactionFailed], Awaitable[None]],
        rebalancing: Callable[[], bool] | None = None,
    ) -> None:
        """The aiokafka producer (created late, by Faust), what stops the worker, and whether
        the consumer group is rebalancing."""
        self._producer = producer
        self._on_failure = on_failure
        if rebalancing is not None:
            self._rebalancing = rebalancing

    @property
    def open(self) -> bool:
        """A transaction is open: records were sent in it since the last commit."""
        return self._open is not None

    @asynccontextmanager
    async def step(
        self,
        *,
        spoils: bool = True,
        generation: int | None = None,
        consumed: Mapping[Any, int] | None = None,
    ) -> AsyncIterator[asyncio.Future[None] | None]:
        """Produce inside the worker's transaction; yields the future of its commit.

        A step that raises spoils the transaction (it cannot commit) unless ``spoils`` is
        false: a single send that raised put nothing in it. ``generation``: the consumer group
        generation the step's input records were fetched in (a stream step); the transaction
        then commits only in that generation. ``consumed``: per source partition, the last
        offset the step acks; the transaction then commits only with offsets past it. Under
        at-least-once it yields ``None`` and does nothing.
        """
        if not self.exactly_once or _inside_step.get():
            yield self._open
            return
        while not self._gate_open.is_set():
            await self._gate_open.wait()
        self._raise_if_failed()
        self._steps += 1
        self._no_steps.clear()
        token = _inside_step.set(True)
        try:
            opened = await self._begin()
            if generation is not None:
                self._generations.add(generation)
            yield opened
            if consumed:
                held = self._consumed
                for tp, offset in consumed.items():
                    if offset > held.get(tp, -1):
                        held[tp] = offset
        except TransactionFailed as exc:
            await self.fail(exc)
            raise
        except BaseException as exc:
            if spoils and self._open is not None and self._spoiled is None:
                self._spoiled = exc
            raise
        finally:
            _inside_step.reset(token)
            self._steps -= 1
            if self._steps == 0:
                self._no_steps.set()

    async def run_step(
        self,
        body: Callable[[], Awaitable[T]],
        *,
        generation: int | None = None,
        consumed: Mapping[Any, int] | None = None,
    ) -> T:
        """``body`` as one step, to its end: a worker stopping (Faust cancels its agents) does
        not cut a step between its records and its acks; the step ends, its acks are taken by
        the last commit. ``generation`` and ``consumed`` as for :meth:`step`. Under
        at-least-once, ``body`` as it is."""
        if not self.exactly_once:
            return await body()

        async def whole() -> T:
            async with self.step(generation=generation, consumed=consumed):
                return await body()

        return await asyncio.shield(asyncio.ensure_future(whole()))

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """No step inside until the block ends (a commit's turn); one commit at a time."""
        async with self._commit_lock:
            self._gate_open.clear()
            try:
                began = monotonic()
                await self._no_steps.wait()
                self.timings.steps.observe(monotonic() - began)
                yield
            finally:
                self._gate_open.set()

    async def produce(self, send: Callable[[], Awaitable[Awaitable[T]]]) -> Awaitable[T]:
        """``send`` (one record, from outside the stream: a published or redriven event) in a
        step; what it returns resolves once the record is committed, or under at-least-once
        once it is acknowledged. So an API answer never names a record a ``read_committed``
        reader may not get (its transaction could still abort)."""
        async with self.step(spoils=False) as opened:
            acknowledged = await send()
        if opened is None:
            return acknowledged

        async def committed() -> T:
            result = await acknowledged
            await self.committed(opened)
            return result

        return asyncio.ensure_future(committed())

    def after_commit(
        self,
        key: Hashable,
        action: Callable[[], None],
        on_abort: Callable[[], None] | None = None,
    ) -> None:
        """Run ``action`` once the open transaction commits, or ``on_abort`` (if given) when it
        aborts instead; a later action for the same ``key`` replaces an earlier one."""
        self._after_commit[key] = action
        if on_abort is not None:
            self._after_abort[key] = on_abort
        else:
            self._after_abort.pop(key, None)

    async def committed(self, opened: asyncio.Future[None] | None) -> None:
        """Wait until the transaction a step produced in has committed (raises if it aborted)."""
        if opened is not None:
            self._commit_wanted.set()
            await asyncio.shield(opened)

    async def until_commit_due(self, interval_s: float) -> None:
        """Sleep until the next commit: ``interval_s``, or sooner when a caller waits for one."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._commit_wanted.wait(), interval_s)
        self._commit_wanted.clear()

    def check_producer(self) -> None:
        """Raise when the producer's transaction can no longer commit (an abortable or fatal
        error): a step that sends again would only be refused again."""
        if not self.exactly_once or self._producer is None:
            return
        self._raise_if_failed()
        error = internals.transaction_error(self._producer())
        if error is not None:
            raise TransactionFailed(f"The worker's transaction cannot commit: {error!r}")

    async def commit(self, offsets: Mapping[Any, int], group: GroupMetadata | None) -> bool:
        """Commit the open transaction with ``offsets`` (called inside :meth:`exclusive`);
        ``group``: the consumer's group metadata now (``None`` without a consumer group).

        With offsets and no transaction open (a step that produced nothing), one is begun for
        them. Returns whether the offsets were committed; raises :class:`TransactionFailed`
        after stopping the worker when the transaction could not commit, or must not: a step
        failed in it, or it holds records processed in another generation of the group.
        """
        self._raise_if_failed()
        if self._open is None and not offsets:
            return False
        if offsets and group is None:
            raise ValueError("Offsets to commit without the consumer group's metadata")
        refusal = self._refusal(offsets, group)
        if refusal is not None:
            if await self.give_up(refusal):
                return False
            raise refusal
        opened = await self._begin()
        try:
            await self._end_with(offsets, group)
        except TransactionFailed as exc:
            await self.fail(exc)
            raise
        except internals.GroupRefusedOffsets as exc:
            # A worker starved past its session (the group dropped it) learns it here first.
            refusal = TransactionFailed(
                f"The consumer group refused the transaction's offsets, aborting it: {exc}",
                migrated=True,
            )
            refusal.__cause__ = exc
            if await self.give_up(refusal):
                return False
            raise refusal from exc
        except Exception as exc:  # any failure here ends the transaction
            failure = TransactionFailed(f"Transaction commit failed: {exc!r}")
            failure.__cause__ = exc
            await self.fail(failure)
            raise failure from exc
        self._open = None
        self._generations.clear()
        self._consumed.clear()
        self.commits += 1
        actions, self._after_commit, self._after_abort = self._after_commit, {}, {}
        broken: Exception | None = None
        for action in actions.values():
            try:
                action()
            except Exception as exc:  # noqa: BLE001  the others still run; the worker stops below
                broken = broken or exc
        if not opened.done():
            opened.set_result(None)
        if broken is not None:
            # Committed, but a table store could not take its writes (a disk error): what it
            # holds stays consistent with its changelog, but this run's view of it is lost.
            failure = TransactionFailed(
                f"Committed, but what follows the commit failed: {broken!r}"
            )
            await self.fail(failure)
            raise failure from broken
        return bool(offsets)

    async def _end_with(self, offsets: Mapping[Any, int], group: GroupMetadata | None) -> None:
        """The open transaction's offsets (with ``group``'s generation), then its end."""
        producer = self._producer_now()
        if offsets and group is not None:
            began = monotonic()
            await asyncio.wait_for(
                internals.send_offsets_to_transaction(producer, offsets, group), self.timeout_s
            )
            self.timings.offsets.observe(monotonic() - began)
        began = monotonic()
        await asyncio.wait_for(producer.commit_transaction(), self.timeout_s)
        self.timings.end.observe(monotonic() - began)

    async def give_up(self, refusal: TransactionFailed) -> bool:
        """The open transaction must not commit: abort it. While the group rebalances, an
        abortable refusal lets the worker go on (returns true): the partitions are being taken
        away, and whoever gets them reads their records again from the committed offsets, so
        they are processed once. A migrated one does whenever it comes. Otherwise the worker
        stops (returns false)."""
        if refusal.abortable and (refusal.migrated or self._rebalancing()):
            try:
                await self._abort(str(refusal))
            except TransactionFailed:
                return False  # the abort failed: the worker stops
            return True
        await self.fail(refusal)
        return False

    def _refusal(
        self, offsets: Mapping[Any, int], group: GroupMetadata | None
    ) -> TransactionFailed | None:
        """Why the open transaction must not commit with ``offsets``, if it must not."""
        if self._spoiled is not None:
            return TransactionFailed(f"A step failed inside the transaction: {self._spoiled!r}")
        uncovered = self._uncovered(offsets)
        if uncovered:
            return TransactionFailed(
                "The transaction holds the outputs of records whose offsets this commit would"
                f" not take (partition: last offset acked, offset committed): {uncovered}",
                abortable=True,
            )
        stale = self._stale_generations(group)
        if stale:
            now = group.generation_id if group is not None else None
            return TransactionFailed(
                f"The transaction holds records processed in generation {stale} of the consumer"
                f" group, which is now at {now}: the worker lost its membership (paused past its"
                " session timeout?) and its partitions may be another worker's; aborting",
                abortable=True,
            )
        return None

    async def fail(self, exc: TransactionFailed) -> None:
        """Abort what can be aborted and stop the worker; the first failure wins."""
        if self.failed is not None:
            return
        self.failed = exc
        self._drop_open(exc)
        log.error("Exactly-once transaction failed, stopping the worker: %s", exc)
        producer = self._producer() if self._producer is not None else None
        if producer is not None and internals.can_abort(producer):
            try:
                await asyncio.wait_for(producer.abort_transaction(), self.timeout_s)
            except Exception as abort_error:  # noqa: BLE001  the broker's timeout aborts it
                log.warning("Abort of the failed transaction failed: %r", abort_error)
        if self._on_failure is not None:
            await self._on_failure(exc)

    async def _abort(self, reason: str) -> None:
        """Abort the open transaction and go on (no failure: the producer can begin another)."""
        log.warning("Aborting the open transaction: %s", reason)
        was_open = self._open is not None
        self._drop_open(TransactionFailed(f"Aborted: {reason}"))
        self.aborts += 1
        if not was_open:
            return  # nothing began in the producer
        try:
            await asyncio.wait_for(self._producer_now().abort_transaction(), self.timeout_s)
        except Exception as exc:  # any failure to abort ends the run
            failure = TransactionFailed(f"Abort failed: {exc!r}")
            failure.__cause__ = exc
            await self.fail(failure)
            raise failure from exc

    def _drop_open(self, exc: TransactionFailed) -> None:
        """Forget the open transaction: its table writes are dropped, its waiters told."""
        aborted, self._after_abort = self._after_abort, {}
        self._after_commit.clear()
        self._generations.clear()
        self._consumed.clear()
        self._spoiled = None
        for action in aborted.values():
            action()
        opened, self._open = self._open, None
        if opened is not None and not opened.done():
            opened.set_exception(exc)
            opened.exception()  # retrieved: a waiter may never come

    def _uncovered(self, offsets: Mapping[Any, int]) -> dict[Any, tuple[int, int | None]]:
        """The source partitions whose acked records this commit's ``offsets`` leave out."""
        return {
            tp: (last, offsets.get(tp))
            for tp, last in self._consumed.items()
            if offsets.get(tp, -1) <= last
        }

    async def _begin(self) -> asyncio.Future[None]:
        if self._open is not None:
            return self._open
        async with self._begin_lock:
            if self._open is None:
                self._raise_if_failed()
                producer = self._producer_now()
                try:
                    await asyncio.wait_for(producer.begin_transaction(), self.timeout_s)
                except Exception as exc:  # fenced, or no coordinator in time
                    failure = TransactionFailed(f"Could not begin a transaction: {exc!r}")
                    await self.fail(failure)
                    raise failure from exc
                self._open = asyncio.get_running_loop().create_future()
            return self._open

    def _stale_generations(self, group: GroupMetadata | None) -> list[int]:
        now = group.generation_id if group is not None else None
        return sorted(g for g in self._generations if g != now)

    def _producer_now(self) -> Any:
        if self._producer is None:
            raise RuntimeError("WorkerTransactions used before bind()")
        return self._producer()

    def _raise_if_failed(self) -> None:
        if self.failed is not None:
            raise self.failed


#: What an app built without transactions (tests' apps, fakes) runs with.
_AT_LEAST_ONCE = WorkerTransactions(exactly_once=False)


def transactions_of(app: Any) -> WorkerTransactions:
    """The app's transactions; an app built without them runs at-least-once."""
    found = getattr(app, "transactions", None)
    return found if isinstance(found, WorkerTransactions) else _AT_LEAST_ONCE
