"""A redrive interrupted between its Kafka commit and its confirmation, on the real stack.

The first request produces through a transactional producer and "dies" right after its
transaction ended (committed, aborted, or still open), before it confirms anything. The next
request settles each letter from Kafka (``read_committed``): in the end a ``read_committed``
reader of the target topic gets exactly one record per letter.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiopg
import pytest
from aiokafka import AIOKafkaProducer

from karrot_streams.connections import kafka_connection
from karrot_streams.dlq.dead_letters import DeadLetter, HeaderList
from karrot_streams.dlq.reader import check_pending
from karrot_streams.dlq.records import RedriveRecords
from karrot_streams.dlq.redrive import Produced, RedriveIncomplete, Redriver, RedriveReport
from karrot_streams.dlq.transactional import TransactionalSend
from karrot_streams.events.topics import TopicNames
from karrot_streams.provision import create_topics
from karrot_streams.settings import Settings
from karrot_streams.store.migrations import migrate
from tests.support import kafka

pytestmark = pytest.mark.integration


class Crashed(Exception):
    """The process died here: nothing after it ran."""


@pytest.fixture
async def names(settings: Settings) -> AsyncIterator[TopicNames]:
    """A prefix of this test's own: its chat-events topic holds only its redriven records."""
    await migrate(settings.database_dsn)
    topics = TopicNames(f"once{uuid.uuid4().hex[:8]}.")
    await create_topics(settings, [topics.physical("chat-events")])
    yield topics
    async with aiopg.connect(settings.database_dsn) as conn, conn.cursor() as cur:
        await cur.execute(
            "DELETE FROM dlq_redrive WHERE dlq_topic = %s", (topics.physical("dlq.chat-events"),)
        )


@asynccontextmanager
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    started = AIOKafkaProducer(
        **kafka_connection(settings).client_kwargs(),
        enable_idempotence=True,
        transactional_id=f"test-redrive-once-{uuid.uuid4().hex}",
    )
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


def letters(names: TopicNames) -> list[DeadLetter]:
    return [
        DeadLetter(
            topic=names.physical("dlq.chat-events"),
            partition=0,
            offset=offset,
            timestamp=0,
            key=f"room-{offset}".encode(),
            value=f"value-{offset}".encode(),
            headers=(
                ("original_topic", b"chat-events"),
                ("exception_class", b"karrot_streams.events.failures.InvalidEvent"),
                ("retry_count", b"1"),
            ),
        )
        for offset in (11, 12)
    ]


async def copies(settings: Settings, names: TopicNames) -> dict[str, int]:
    """Records a read_committed reader gets, by their ``redriven_from``."""
    counted: dict[str, int] = {}
    for message in await kafka.read_all(settings.kafka_bootstrap, names.physical("chat-events")):
        address = dict(message.headers)["redriven_from"].decode()
        counted[address] = counted.get(address, 0) + 1
    return counted


async def dying_redrive(
    settings: Settings, names: TopicNames, end: Callable[[AIOKafkaProducer], Awaitable[Any]]
) -> None:
    """Produce the letters in a transaction, end it with ``end``, then die unconfirmed."""
    async with producer(settings) as dying:

        async def send(
            topic: str, key: bytes | None, value: bytes | None, headers: HeaderList
        ) -> Produced:
            acknowledged = await dying.send(topic, value, key=key, headers=headers)
            never: Awaitable[Any] = dying.client._loop.create_future()  # dies before the commit
            return Produced(acknowledged, never)

        @asynccontextmanager
        async def hold() -> AsyncIterator[None]:
            await dying.begin_transaction()
            yield
            await end(dying)
            raise Crashed

        async with RedriveRecords.connect(settings.database_dsn) as records:
            redriver = Redriver(
                records=records, send=send, hold=hold, topics=names, request_id="died"
            )
            with pytest.raises(Crashed):
                await redriver.redrive(
                    names.physical("dlq.chat-events"), letters(names), dry_run=False
                )
            found = await records.lookup(names.physical("dlq.chat-events"), [(0, 11), (0, 12)])
            assert all(r.pending is not None and not r.redriven for r in found.values())


async def next_redrive(settings: Settings, names: TopicNames) -> RedriveReport:
    """A request after the lease (zero here), through the CLI's transactional send."""
    async with (
        producer(settings) as fresh,
        RedriveRecords.connect(settings.database_dsn) as records,
    ):
        transactional = TransactionalSend(fresh)
        redriver = Redriver(
            records=records,
            send=transactional.send,
            hold=transactional.hold,
            check=functools.partial(check_pending, kafka_connection(settings)),
            topics=names,
            lease_s=0.0,
        )
        return await redriver.redrive(
            names.physical("dlq.chat-events"), letters(names), dry_run=False
        )


def once(names: TopicNames) -> dict[str, int]:
    return {f"{names.physical('dlq.chat-events')}:0:{offset}": 1 for offset in (11, 12)}


async def commit(producer: AIOKafkaProducer) -> None:
    await producer.commit_transaction()


async def abort(producer: AIOKafkaProducer) -> None:
    await producer.abort_transaction()


async def test_died_after_the_commit_is_confirmed_not_redriven(
    settings: Settings, names: TopicNames
) -> None:
    await dying_redrive(settings, names, commit)
    assert await copies(settings, names) == once(names)

    report = await next_redrive(settings, names)
    assert (report.redriven, report.already_redriven) == (0, 2)
    assert all(m.target is not None for m in report.outcomes)
    assert await copies(settings, names) == once(names)

    again = await next_redrive(settings, names)
    assert again.already_redriven == 2
    assert await copies(settings, names) == once(names)


async def test_died_after_an_abort_is_redriven_once(settings: Settings, names: TopicNames) -> None:
    await dying_redrive(settings, names, abort)
    assert await copies(settings, names) == {}

    report = await next_redrive(settings, names)
    assert (report.redriven, report.already_redriven) == (2, 0)
    assert await copies(settings, names) == once(names)

    again = await next_redrive(settings, names)
    assert again.already_redriven == 2
    assert await copies(settings, names) == once(names)


async def test_died_inside_an_open_transaction_waits_for_its_end(
    settings: Settings, names: TopicNames
) -> None:
    async with producer(settings) as stuck:

        async def leave_open(_: AIOKafkaProducer) -> None:
            return None

        # The dying request's producer stops (its transaction stays open on the broker).
        await dying_redrive(settings, names, leave_open)
        # Another producer's transaction, open in the same partitions: the LSO stays put.
        await stuck.begin_transaction()
        for letter in letters(names):
            await stuck.send_and_wait(names.physical("chat-events"), b"other", key=letter.key)

        with pytest.raises(RedriveIncomplete) as caught:
            await next_redrive(settings, names)
        assert all("still open" in reason for reason in caught.value.failures.values())
        assert await copies(settings, names) == {}
        await stuck.abort_transaction()
