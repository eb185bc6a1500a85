"""In-memory stand-ins for the pipeline's dependencies: a registry that can be down, a store that
can refuse, a send that can fail. Each records what it was asked, so a test can check the effects
of a batch without Kafka, PostgreSQL or a schema registry."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from karrot_streams.avro import schemas
from karrot_streams.avro.codec import encode
from karrot_streams.avro.registry import SchemaRegistry, WriterSchema
from karrot_streams.events.failures import TransientFailure, UndecodableMessage
from karrot_streams.events.model import Event
from karrot_streams.events.types import INPUT_TOPICS, PAYLOAD_RECORD_OF, EventType, value_subject
from karrot_streams.pipeline.handler import Outgoing
from karrot_streams.pipeline.messages import Incoming
from karrot_streams.store.errors import RowsRefused, StoreUnavailable
from karrot_streams.store.event_store import EventStore, StoreRow, collapse

OCCURRED = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)

#: Schema ids of the input subjects, as the fake registry numbers them.
INPUT_SCHEMA_IDS = {topic: n for n, topic in enumerate(INPUT_TOPICS, start=1)}


def writer_of(subject: str, schema_id: int) -> WriterSchema:
    loaded = schemas.load(subject)
    return WriterSchema(schema_id, loaded.record_name, loaded.parsed)


def enriched_writers() -> dict[str, WriterSchema]:
    """The enriched subjects' writers, keyed by enriched topic, ids after the input ones."""
    return {
        f"enriched.{topic}": writer_of(value_subject(f"enriched.{topic}"), 100 + n)
        for topic, n in INPUT_SCHEMA_IDS.items()
    }


class FakeRegistry(SchemaRegistry):
    """Knows the input subjects by :data:`INPUT_SCHEMA_IDS`; ``down_for`` lookups fail first."""

    def __init__(self, *, down_for: int = 0) -> None:
        super().__init__("http://registry.invalid")
        self.down_for = down_for
        self.lookups = 0

    async def _fetch(self, schema_id: int) -> WriterSchema:
        self.lookups += 1
        if self.down_for > 0:
            self.down_for -= 1
            raise TransientFailure("Schema registry unreachable: connection refused")
        for topic, known in INPUT_SCHEMA_IDS.items():
            if known == schema_id:
                return writer_of(value_subject(topic), schema_id)
        raise UndecodableMessage(f"Unknown schema id {schema_id}")


class FakeStore(EventStore):
    """Rows by event id, status forward only (as the real upsert); can be down or refuse rows.

    It raises what the real store raises (store/errors.py), not psycopg2's errors:
    ``down_for``: that many calls raise StoreUnavailable, a TransientFailure (PostgreSQL
    unreachable). ``refused``: event ids whose rows the database rejects (RowsRefused, as the
    store turns a psycopg2.DataError), in any call that carries them, the way one bad row fails
    the whole multi-row statement.
    """

    def __init__(self, *, down_for: int = 0, refused: Iterable[str] = ()) -> None:
        super().__init__("postgresql://store.invalid/none")
        self.down_for = down_for
        self.refused = set(refused)
        self.rows: dict[str, StoreRow] = {}
        self.calls: list[list[StoreRow]] = []

    async def upsert(self, rows: Iterable[StoreRow]) -> None:
        batch = list(rows)
        self.calls.append(batch)
        if self.down_for > 0:
            self.down_for -= 1
            raise StoreUnavailable("PostgreSQL unavailable: connection refused")
        if any(row.event_id in self.refused for row in batch):
            raise RowsRefused("value too long for type character varying(255)")
        for row in collapse([*self.rows.values(), *batch]):
            self.rows[row.event_id] = row


class FakeSend:
    """Records what reached the "broker"; can fail whole sends or chosen records.

    ``fail_sends``: that many calls refuse every record. ``fail_record``: a predicate; a record
    it matches is refused ``fail_record_times`` times, then accepted.
    """

    def __init__(
        self,
        *,
        fail_sends: int = 0,
        fail_record: Callable[[Outgoing], bool] | None = None,
        fail_record_times: int = 1,
    ) -> None:
        self.fail_sends = fail_sends
        self.fail_record = fail_record
        self.fail_record_times = fail_record_times
        self.delivered: list[Outgoing] = []
        self.calls: list[list[Outgoing]] = []

    async def __call__(self, records: Sequence[Outgoing]) -> list[tuple[Outgoing, BaseException]]:
        self.calls.append(list(records))
        if self.fail_sends > 0:
            self.fail_sends -= 1
            error = ConnectionError("KafkaConnectionError: no broker available")
            return [(record, error) for record in records]
        failed: list[tuple[Outgoing, BaseException]] = []
        for record in records:
            if self.fail_record is not None and self.fail_record(record) and self.fail_record_times:
                self.fail_record_times -= 1
                failed.append((record, TimeoutError("RequestTimedOutError")))
            else:
                self.delivered.append(record)
        return failed

    def to(self, topic: str) -> list[Outgoing]:
        return [record for record in self.delivered if record[0] == topic]


# -- events ----------------------------------------------------------------------------------


def event(event_type: EventType, aggregate_id: str, payload: dict[str, object]) -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        aggregate_id=aggregate_id,
        occurred_at=OCCURRED,
        payload_record=PAYLOAD_RECORD_OF[event_type],
        payload=payload,
    )


def item_created(item_id: str = "i1", *, price: int = 15_000, category: str = " 도서 ") -> Event:
    return event(
        EventType.ITEM_CREATED,
        item_id,
        {
            "itemId": item_id,
            "sellerId": "s1",
            "title": "자전거",
            "price": price,
            "category": category,
            "region": None,
        },
    )


def payment_completed(item_id: str = "i1", *, amount: int = 10_000) -> Event:
    return event(
        EventType.PAYMENT_COMPLETED,
        "pay1",
        {
            "paymentId": "pay1",
            "buyerId": "b1",
            "sellerId": "s1",
            "itemId": item_id,
            "amount": amount,
        },
    )


def user_created(region: str | None = None) -> Event:
    return event(
        EventType.USER_CREATED,
        "u1",
        {"userId": "u1", "email": "u1@karrot.example", "nickname": "당근", "region": region},
    )


def chat_sent(message: str = "안녕하세요") -> Event:
    return event(
        EventType.CHAT_MESSAGE_SENT,
        "room1",
        {"chatRoomId": "room1", "senderId": "u1", "message": message},
    )


def encoded(ev: Event) -> bytes:
    schema_id = INPUT_SCHEMA_IDS[ev.topic]
    return encode(schema_id, writer_of(value_subject(ev.topic), schema_id).parsed, ev.to_avro())


def incoming(
    ev: Event | None = None,
    *,
    topic: str | None = None,
    value: bytes | None = None,
    offset: int = 0,
    partition: int = 0,
    key: bytes | None = b"k",
    headers: Sequence[tuple[str, bytes]] = (),
) -> Incoming:
    """A consumed record: of ``ev`` (Avro-encoded), or of raw ``value`` bytes on ``topic``."""
    if ev is not None:
        topic = topic or ev.topic
        value = encoded(ev) if value is None else value
    assert topic is not None
    return Incoming(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=tuple(headers),
    )
