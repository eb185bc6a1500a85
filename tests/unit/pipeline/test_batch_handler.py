"""BatchHandler with in-memory fakes: what a batch stores, sends and dead-letters, and how it
waits out a registry, database or broker that is away instead of dead-lettering good events."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
import pytest

from karrot_streams.avro.codec import decode
from karrot_streams.avro.framing import unframe
from karrot_streams.events.failures import RetriesExhausted
from karrot_streams.events.topics import InternalTopics
from karrot_streams.monitoring.health import Health
from karrot_streams.monitoring.metrics import Metrics
from karrot_streams.pipeline.handler import BatchHandler, Outgoing
from karrot_streams.pipeline.messages import Accepted, Incoming, Rejected
from karrot_streams.resilience.backoff import Backoff
from karrot_streams.store.event_store import Status
from karrot_streams.tables.facts import table_key
from tests.unit.pipeline.fakes import (
    FakeRegistry,
    FakeSend,
    FakeStore,
    chat_sent,
    enriched_writers,
    incoming,
    item_created,
    payment_completed,
    user_created,
)

TOPICS = InternalTopics("karrot-test")
RETRY_ATTEMPTS = 3
TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Rig:
    """A BatchHandler wired to fakes, with the fakes at hand for the assertions."""

    def __init__(
        self,
        *,
        registry: FakeRegistry | None = None,
        store: FakeStore | None = None,
        send: FakeSend | None = None,
        topics: InternalTopics = TOPICS,
    ) -> None:
        self.registry = registry or FakeRegistry()
        self.store = store or FakeStore()
        self.send = send or FakeSend()
        self.health = Health()
        self.metrics = Metrics.create()
        self.writers = enriched_writers()
        self.handler = BatchHandler(
            registry=self.registry,
            store=self.store,
            send=self.send,
            topics=topics,
            enriched_writers=self.writers,
            fee_rate=Decimal("0.033"),
            retry_attempts=RETRY_ATTEMPTS,
            # No waiting: the outages below are waited out at once, however many attempts.
            backoff=Backoff(0.0, 0.0),
            health=self.health,
            metrics=self.metrics,
        )

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def enriched_record(self, record: Outgoing) -> dict[str, Any]:
        schema_id, body = unframe(record[2])
        writer = next(w for w in self.writers.values() if w.schema_id == schema_id)
        return decode(writer.parsed, body)


def headers_of(record: Outgoing) -> dict[str, bytes]:
    return dict(record[3] or [])


def fact_value(record: Outgoing) -> dict[str, Any]:
    assert record[2] is not None
    value: dict[str, Any] = orjson.loads(record[2])
    return value


# -- valid events ----------------------------------------------------------------------------


async def test_a_listing_is_stored_enriched_and_sent_as_an_item_fact() -> None:
    rig = Rig()
    listing = item_created("i1", price=15_000, category=" 도서 ")
    message = incoming(listing, offset=41, partition=2)

    outcomes = await rig.handler.handle([message])

    assert [type(o) for o in outcomes] == [Accepted]
    row = rig.store.rows[listing.event_id]
    assert (row.status, row.event_type, row.aggregate_id) == (
        Status.PROCESSED,
        "ITEM_CREATED",
        "i1",
    )
    [enriched] = rig.send.to("enriched.item-events")
    assert enriched[1] == b"k"
    value = rig.enriched_record(enriched)
    assert value["eventId"] == listing.event_id
    assert value["processing"]["sourceTopic"] == "item-events"
    assert (value["processing"]["sourcePartition"], value["processing"]["sourceOffset"]) == (2, 41)
    assert value["derived"] == {"categoryNormalized": "도서", "priceBand": "UNDER_100K"}
    [fact] = rig.send.to(TOPICS.item_facts)
    assert fact[1] == table_key("i1")
    assert fact_value(fact) == {
        "occurred_at": listing.occurred_at.timestamp(),
        "source": "item-events:2",
        "offset": 41,
        "event_id": listing.event_id,
        "kind": "LISTED",
        "item_id": "i1",
        "seller_id": "s1",
        "category": "도서",
        "amount": 15_000,
    }
    assert rig.send.to("dlq.item-events") == []
    assert rig.metric("karrot_events_processed_total", topic="item-events") == 1


async def test_a_completed_payment_feeds_items_sellers_and_volume() -> None:
    rig = Rig()
    sale = payment_completed("i9", amount=10_000)

    await rig.handler.handle([incoming(sale, offset=7)])

    sale_facts = [
        (record[0], record[1], fact_value(record))
        for record in rig.send.delivered
        if not record[0].startswith("enriched.")
    ]
    assert [(topic, key) for topic, key, _ in sale_facts] == [
        (TOPICS.item_facts, table_key("i9")),
        (TOPICS.seller_facts, table_key("s1")),
        (TOPICS.volume_facts, table_key("KRW")),
    ]
    for _, _, value in sale_facts:
        assert (value["kind"], value["amount"], value["fee"], value["net"]) == (
            "SOLD",
            10_000,
            330,
            9_670,
        )
        assert (value["source"], value["offset"]) == ("payment-events:0", 7)


async def test_a_user_without_region_counts_under_unknown_and_chat_has_no_facts() -> None:
    rig = Rig()

    await rig.handler.handle([incoming(user_created(None)), incoming(chat_sent(), offset=1)])

    [user_fact] = rig.send.to(TOPICS.user_facts)
    assert user_fact[1] == table_key("UNKNOWN")
    assert fact_value(user_fact)["region"] == "UNKNOWN"
    assert len(rig.send.to("enriched.chat-events")) == 1
    facts = {TOPICS.item_facts, TOPICS.seller_facts, TOPICS.volume_facts, TOPICS.category_effects}
    assert [r for r in rig.send.delivered if r[0] in facts] == []


async def test_a_record_without_key_is_keyed_by_its_aggregate() -> None:
    rig = Rig()

    await rig.handler.handle([incoming(item_created("i5"), key=None)])

    [enriched] = rig.send.to("enriched.item-events")
    assert enriched[1] == b"i5"


async def test_rows_are_written_before_anything_is_sent() -> None:
    order: list[str] = []

    class OrderedStore(FakeStore):
        async def upsert(self, rows: Any) -> None:
            order.append("store")
            await super().upsert(rows)

    class OrderedSend(FakeSend):
        async def __call__(self, records: Any) -> list[tuple[Outgoing, BaseException]]:
            order.append("send")
            return await super().__call__(records)

    rig = Rig(store=OrderedStore(), send=OrderedSend())
    prepared = await rig.handler.prepare([incoming(item_created()), incoming(user_created())])
    assert order == ["store"]  # prepare stores; nothing leaves before emit
    await rig.handler.emit(prepared)
    assert order == ["store", "send"]
    assert len(rig.store.calls) == 1  # the batch's rows in one round trip


# -- poison ----------------------------------------------------------------------------------


async def test_an_invalid_event_is_dead_lettered_with_the_failure_headers() -> None:
    rig = Rig()
    bad = item_created("i1", price=-1)
    message = incoming(bad, offset=12, partition=1, headers=[("origin", b"app")])

    [outcome] = await rig.handler.handle([message])

    assert isinstance(outcome, Rejected)
    [letter] = rig.send.to("dlq.item-events")
    assert (letter[1], letter[2]) == (message.key, message.value)  # bytes untouched
    headers = headers_of(letter)
    assert headers["origin"] == b"app"
    assert headers["original_topic"] == b"item-events"
    assert headers["original_partition"] == b"1"
    assert headers["original_offset"] == b"12"
    assert headers["exception_class"] == b"karrot_streams.events.failures.InvalidEvent"
    assert headers["exception_message"] == b"Price cannot be negative"
    assert headers["failed_at"].endswith(b"Z")
    assert headers["retry_count"] == b"1"
    row = rig.store.rows[bad.event_id]
    assert row.status is Status.FAILED
    assert row.failure_reason == "InvalidEvent: Price cannot be negative"
    assert rig.send.to("enriched.item-events") == []
    assert rig.send.to(TOPICS.item_facts) == []
    assert (
        rig.metric("karrot_events_dead_lettered_total", topic="item-events", reason="InvalidEvent")
        == 1
    )


@pytest.mark.parametrize(
    "value",
    [b"not avro at all", b"\x00\x00\x00\x00\x02\xff\xff\xff", b"\x00\x00\x00\x03\xe7body", b""],
    ids=["no-framing", "bad-avro", "unknown-schema-id", "empty"],
)
async def test_undecodable_bytes_are_dead_lettered_as_they_came(value: bytes) -> None:
    rig = Rig()
    message = incoming(topic="item-events", value=value, key=b"\xfe\xff")

    await rig.handler.handle([message])

    [letter] = rig.send.to("dlq.item-events")
    assert (letter[1], letter[2]) == (b"\xfe\xff", value)
    exception_class = headers_of(letter)["exception_class"]
    assert exception_class == b"karrot_streams.events.failures.UndecodableMessage"
    assert rig.store.rows == {}  # no event id could be read: the dead letter is its record


async def test_a_dead_letter_counts_its_earlier_attempts() -> None:
    rig = Rig()
    redriven = incoming(
        item_created(price=-5), headers=[("retry_count", b"2"), ("exception_class", b"stale")]
    )

    await rig.handler.handle([redriven])

    [letter] = rig.send.to("dlq.item-events")
    names = [name for name, _ in letter[3] or []]
    assert names.count("exception_class") == 1  # the stale copy is replaced, not repeated
    assert headers_of(letter)["retry_count"] == b"3"


async def test_good_and_bad_records_of_one_batch_each_go_their_way() -> None:
    rig = Rig()
    good, bad = item_created("i1"), item_created("i2", price=-1)

    outcomes = await rig.handler.handle(
        [incoming(good, offset=0), incoming(bad, offset=1), incoming(good, offset=2)]
    )

    assert [type(o) for o in outcomes] == [Accepted, Rejected, Accepted]
    assert len(rig.send.to("enriched.item-events")) == 2
    assert len(rig.send.to("dlq.item-events")) == 1
    assert {row.status for row in rig.store.rows.values()} == {Status.PROCESSED, Status.FAILED}


# -- outages ---------------------------------------------------------------------------------


async def test_a_registry_outage_is_waited_out_not_dead_lettered() -> None:
    rig = Rig(registry=FakeRegistry(down_for=3))

    [outcome] = await rig.handler.handle([incoming(item_created())])

    assert isinstance(outcome, Accepted)
    assert rig.registry.lookups == 4
    assert rig.send.to("dlq.item-events") == []
    assert rig.metric("karrot_transient_failures_total", component="schema_registry") == 3
    assert not rig.health.is_down("schema_registry")


async def test_the_registry_is_asked_once_per_schema_id() -> None:
    rig = Rig()

    await rig.handler.handle([incoming(item_created(f"i{n}"), offset=n) for n in range(5)])

    assert rig.registry.lookups == 1


async def test_a_store_outage_is_waited_out_and_the_rows_written_once() -> None:
    rig = Rig(store=FakeStore(down_for=2))
    listing = item_created()

    [outcome] = await rig.handler.handle([incoming(listing)])

    assert isinstance(outcome, Accepted)
    assert len(rig.store.calls) == 3
    assert list(rig.store.rows) == [listing.event_id]
    assert rig.metric("karrot_transient_failures_total", component="database") == 2
    assert not rig.health.is_down("database")
    assert len(rig.send.to("enriched.item-events")) == 1


async def test_health_shows_the_store_down_while_it_is_away() -> None:
    health_seen: list[bool] = []

    class WatchedStore(FakeStore):
        async def upsert(self, rows: Any) -> None:
            health_seen.append(rig.health.is_down("database"))
            await super().upsert(rows)

    rig = Rig(store=WatchedStore(down_for=2))
    await rig.handler.handle([incoming(item_created())])

    assert health_seen == [False, True, True]
    assert not rig.health.is_down("database")


async def test_a_row_the_store_keeps_refusing_turns_its_event_into_a_dead_letter() -> None:
    refused, fine = item_created("i1"), item_created("i2")
    rig = Rig(store=FakeStore(refused=[refused.event_id]))

    outcomes = await rig.handler.handle([incoming(refused, offset=0), incoming(fine, offset=1)])

    first, second = outcomes
    assert isinstance(first, Rejected)
    assert isinstance(first.failure, RetriesExhausted)
    assert first.attempts == RETRY_ATTEMPTS
    assert isinstance(second, Accepted)
    # The batch was refused once, then the rows went one by one, the bad one its whole budget.
    assert [len(call) for call in rig.store.calls] == [2] + [1] * RETRY_ATTEMPTS + [1]
    assert list(rig.store.rows) == [fine.event_id]
    [letter] = rig.send.to("dlq.item-events")
    headers = headers_of(letter)
    assert headers["exception_class"] == b"karrot_streams.events.failures.RetriesExhausted"
    assert headers["retry_count"] == str(RETRY_ATTEMPTS).encode()
    assert b"Event store refused the event" in headers["exception_message"]
    assert [fact_value(r)["item_id"] for r in rig.send.to(TOPICS.item_facts)] == ["i2"]


async def test_a_refused_failed_row_still_leaves_its_dead_letter() -> None:
    bad = item_created("i1", price=-1)
    rig = Rig(store=FakeStore(refused=[bad.event_id]))

    [outcome] = await rig.handler.handle([incoming(bad)])

    assert isinstance(outcome, Rejected)
    assert outcome.attempts == 1  # its own failure, not the store's, is what it is dead for
    [letter] = rig.send.to("dlq.item-events")
    assert headers_of(letter)["exception_class"].endswith(b"InvalidEvent")


async def test_a_broker_outage_resends_the_whole_batch_until_it_is_taken() -> None:
    rig = Rig(send=FakeSend(fail_sends=2))

    await rig.handler.handle([incoming(item_created()), incoming(payment_completed(), offset=1)])

    assert [len(call) for call in rig.send.calls] == [6, 6, 6]  # 1+1 and 1+3
    assert len(rig.send.delivered) == 6
    assert rig.metric("karrot_transient_failures_total", component="kafka") == 2
    assert not rig.health.is_down("kafka")


async def test_only_the_records_the_broker_refused_are_sent_again() -> None:
    def is_seller_fact(record: Outgoing) -> bool:
        return record[0] == TOPICS.seller_facts

    rig = Rig(send=FakeSend(fail_record=is_seller_fact, fail_record_times=2))

    await rig.handler.handle([incoming(payment_completed())])

    assert [len(call) for call in rig.send.calls] == [4, 1, 1]
    assert [r[0] for r in rig.send.calls[1]] == [TOPICS.seller_facts]
    assert len(rig.send.to(TOPICS.seller_facts)) == 1


# -- redelivery and trace context --------------------------------------------------------------


async def test_a_redelivered_batch_stores_one_row_and_resends_identical_facts() -> None:
    rig = Rig()
    batch: list[Incoming] = [
        incoming(item_created("i1"), offset=0),
        incoming(payment_completed("i1"), offset=1),
        incoming(item_created("i2", price=-1), offset=2),
    ]

    await rig.handler.handle(batch)
    first_facts = [r for r in rig.send.delivered if not r[0].startswith(("enriched.", "dlq."))]
    first_rows = dict(rig.store.rows)
    rig.send.delivered.clear()
    await rig.handler.handle(batch)
    again_facts = [r for r in rig.send.delivered if not r[0].startswith(("enriched.", "dlq."))]

    assert rig.store.rows == first_rows
    # Same bytes, same source coordinates: the aggregates' replay guard skips them.
    assert again_facts == first_facts


async def test_a_processed_row_is_not_set_back_to_failed_by_a_later_delivery() -> None:
    rig = Rig()
    listing = item_created("i1")
    await rig.handler.handle([incoming(listing)])
    # The same event id arriving again, now invalid (a producer bug): the row keeps PROCESSED.
    broken = replace(item_created("i1", price=-1), event_id=listing.event_id)

    await rig.handler.handle([incoming(broken, offset=1)])

    assert rig.store.rows[listing.event_id].status is Status.PROCESSED


async def test_trace_context_is_carried_onto_every_record_a_message_causes() -> None:
    rig = Rig()
    headers = [("traceparent", TRACEPARENT), ("tracestate", b"karrot=1"), ("origin", b"app")]

    await rig.handler.handle(
        [
            incoming(payment_completed(), headers=headers),
            incoming(item_created(price=-1), offset=1, headers=headers),
        ]
    )

    caused = [r for r in rig.send.delivered if not r[0].startswith("dlq.")]
    assert len(caused) == 4
    for record in caused:
        # Only the trace context travels on: other headers stay with the input record.
        assert record[3] == [("traceparent", TRACEPARENT), ("tracestate", b"karrot=1")]
    [letter] = rig.send.to("dlq.item-events")
    assert headers_of(letter)["traceparent"] == TRACEPARENT
    assert headers_of(letter)["origin"] == b"app"


async def test_records_without_valid_trace_context_carry_no_headers() -> None:
    rig = Rig()

    await rig.handler.handle(
        [
            incoming(item_created(), headers=[("traceparent", b"garbage")]),
            incoming(item_created("i2"), offset=1),
        ]
    )

    assert all(record[3] is None for record in rig.send.delivered)


async def test_batch_sizes_are_observed() -> None:
    rig = Rig()

    await rig.handler.handle([incoming(item_created(f"i{n}"), offset=n) for n in range(3)])
    await rig.handler.handle([])

    assert rig.metric("karrot_pipeline_batch_size_count") == 2
    assert rig.metric("karrot_pipeline_batch_size_sum") == 3


async def test_a_refused_batch_still_dead_letters_the_records_without_a_row() -> None:
    refused = item_created("i1")
    rig = Rig(store=FakeStore(refused=[refused.event_id]))

    outcomes = await rig.handler.handle(
        [incoming(refused), incoming(topic="item-events", value=b"junk", offset=1)]
    )

    assert [type(o) for o in outcomes] == [Rejected, Rejected]
    # Row by row, the undecodable record has none to write: it is not retried, just sent on.
    assert [len(call) for call in rig.store.calls] == [1] + [1] * RETRY_ATTEMPTS
    assert len(rig.send.to("dlq.item-events")) == 2
