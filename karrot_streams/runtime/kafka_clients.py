"""The worker's Kafka clients: an idempotent (and under exactly-once, transactional) producer, a
``read_committed`` consumer, and offset commits that go into the worker's transaction.

* The producer is idempotent in both guarantees (``acks=all``, ``enable_idempotence``): a batch
  the broker refuses is never taken behind a later batch of its partition, so a resend cannot
  land behind a later fact of its source (the aggregates' replay guard would skip it).
* Under exactly-once it is the worker's one transactional producer (``karrot-tx-...``, see
  :mod:`karrot_streams.runtime.transactions`), and every send through Faust's producer is made
  inside a step of the worker's transaction.
* The consumer reads committed records only, in both guarantees: sources, facts, changelogs
  at recovery and for standbys. Faust sets that only under its own ``exactly_once``.
* Under exactly-once, Faust's commit (on its interval, at a rebalance, at stop) commits the
  transaction with the offsets instead of committing them through the consumer.
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import Any, ClassVar, cast

from mode import Service

from karrot_streams.runtime import internals
from karrot_streams.runtime.consumer import BatchDeliveryConsumer
from karrot_streams.runtime.transactions import TransactionFailed, transactions_of

log = logging.getLogger(__name__)


class IdempotentProducer(internals.producer_class()):  # type: ignore[misc]
    """Faust's aiokafka producer, idempotent always, transactional under exactly-once."""

    def _settings_extra(self) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    def _new_producer(self, transactional_id: str | None = None) -> Any:
        transactions = transactions_of(self.app)
        if transactions.exactly_once and transactional_id is None:
            transactional_id = transactions.transactional_id
        settings = {**self._settings_default(), **self._settings_auth(), **self._settings_extra()}
        if transactional_id is not None:
            settings["transaction_timeout_ms"] = int(transactions.timeout_s * 1000)
        return self._producer_type(**settings, transactional_id=transactional_id)

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        transactions = transactions_of(self.app)
        if not transactions.exactly_once:
            return await super().send(*args, **kwargs)
        async with transactions.step():
            transactions.check_producer()
            return await super().send(*args, **kwargs)


class ReadCommittedConsumerThread(internals.consumer_thread_class()):  # type: ignore[misc]
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        internals.read_committed(consumer)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # Before Faust subscribes (no group join yet): a partition that changes owner is read
        # from offsets no open transaction is about to move (KIP-447's other half).
        app = self.consumer.app
        transactions = transactions_of(app)
        if not transactions.exactly_once:
            internals.fetch_stable_offsets(self._consumer)
            return

        async def fence(transactional_id: str) -> None:
            # InitProducerId with its id: the broker bumps its epoch and aborts its open
            # transaction; when it wakes, its EndTxn is refused (ProducerFenced).
            producer = app.producer._new_producer(transactional_id=transactional_id)
            await producer.start()
            await producer.stop()

        internals.fetch_stable_offsets(
            self._consumer, fence=fence, own_id=transactions.transactional_id
        )


#: Faust checks that every assigned partition moves this often at least (its "livelock"
#: detector runs at 2.5 commit intervals: every 0.25 s under exactly-once, for a check meant
#: for seconds).
LIVELOCK_CHECK_MIN_S = 2.5


class TransactionalCommits:
    """Faust's consumer commit, into the worker's transaction under exactly-once."""

    app: Any

    @Service.task
    async def _commit_handler(self) -> None:
        """A commit, then the commit interval, then the next: Faust's timer commits at a fixed
        rate and warns at each commit that outlasts its interval, which a commit that waits for
        the steps inside the transaction often does at 0.1 s."""
        service = cast(Any, self)
        interval = service.commit_interval
        transactions = transactions_of(service.app)
        await service.sleep(interval)
        while not service.should_stop:
            await service.commit()
            if transactions.exactly_once:
                await transactions.until_commit_due(interval)
            else:
                await service.sleep(interval)

    @Service.task
    async def _commit_livelock_detector(self) -> None:
        service = cast(Any, self)
        interval = max(service.commit_interval * 2.5, LIVELOCK_CHECK_MIN_S)
        await service.sleep(interval)
        while not service.should_stop:
            started = monotonic()
            if not service.app.rebalancing:
                await service.verify_all_partitions_active()
            await service.sleep(max(0.0, interval - (monotonic() - started)))

    def _new_consumer_thread(self) -> Any:
        return ReadCommittedConsumerThread(
            self,
            loop=cast(Any, self).loop,
            beacon=cast(Any, self).beacon,
        )

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        transactions = transactions_of(self.app)
        if not transactions.exactly_once:
            return cast(bool, await super().commit(topics, start_new_transaction))  # type: ignore[misc]
        if transactions.failed is not None:
            return False
        async with transactions.exclusive():
            did_commit = cast(
                bool,
                await super().commit(topics, start_new_transaction),  # type: ignore[misc]
            )
            if not did_commit and transactions.open:
                # Records without offsets (published or redriven events), or offsets Faust
                # had nothing new for: the transaction ends anyway, so they become visible.
                # Not in a generation its stream steps were not of (a zombie's revoke, which
                # has no assignment left to commit).
                group = internals.group_metadata(internals.aiokafka_consumer(self))
                try:
                    await transactions.commit({}, group)
                except TransactionFailed:
                    return False
        return did_commit

    async def _commit(self, offsets: Any) -> bool:
        transactions = transactions_of(self.app)
        if not transactions.exactly_once:
            return cast(bool, await super()._commit(offsets))  # type: ignore[misc]
        assignment = cast(Any, self).assignment()
        owned = {tp: offset for tp, offset in offsets.items() if tp in assignment}
        if not owned:
            return False
        group = internals.group_metadata(internals.aiokafka_consumer(self))
        if group.generation_id < 0 or not group.member_id:
            # aiokafka resets the membership when the coordinator no longer knows the member
            # (a worker paused past its session timeout) and then calls the revoke callback,
            # which commits. The broker does not check the generation of a commit made with
            # generation -1 (KIP-447 keeps that for producers outside a group): the zombie's
            # transaction would commit. Its partitions may already be another worker's.
            # Aborted, and the worker goes on: it joins again as a new member (Kafka Streams'
            # TaskMigrated), and its join revokes every partition, acks and all, before it can
            # commit anything. Fenced meanwhile, it stops at its next transaction.
            await transactions.give_up(
                TransactionFailed(
                    "The worker lost its group membership with a transaction open (paused past"
                    " its session timeout?): aborting it rather than committing unfenced",
                    migrated=True,
                )
            )
            return False
        try:
            return await transactions.commit(owned, group)
        except TransactionFailed:
            return False


class KarrotBatchConsumer(TransactionalCommits, BatchDeliveryConsumer):
    """The batch-delivery consumer (runtime/consumer.py) with transactional commits."""


class KarrotConsumer(TransactionalCommits, internals.consumer_class()):  # type: ignore[misc]
    """Faust's own consumer with transactional commits (``KARROT_BATCH_DELIVERY=false``)."""

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        with internals.acks_kept_through_revoke(self, revoked):
            await super().on_partitions_revoked(revoked)


class KarrotBatchTransport(internals.transport_class()):  # type: ignore[misc]
    Consumer: ClassVar[type[Any]] = KarrotBatchConsumer
    Producer: ClassVar[type[Any]] = IdempotentProducer


class KarrotTransport(internals.transport_class()):  # type: ignore[misc]
    Consumer: ClassVar[type[Any]] = KarrotConsumer
    Producer: ClassVar[type[Any]] = IdempotentProducer
