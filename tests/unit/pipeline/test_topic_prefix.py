"""A worker under ``KARROT_TOPIC_PREFIX``: records come in on physical topics, the domain sees
logical ones, and everything sent goes to physical topics behind the same prefix."""

from __future__ import annotations

from dataclasses import replace

import pytest

from karrot_streams.events.topics import InternalTopics
from karrot_streams.pipeline.dead_letters import ORIGINAL_TOPIC
from karrot_streams.pipeline.messages import Accepted, Rejected
from karrot_streams.store.event_store import Status
from tests.unit.pipeline.fakes import incoming, item_created, payment_completed
from tests.unit.pipeline.test_batch_handler import Rig, fact_value, headers_of

PREFIX = "bench.r1."
TOPICS = InternalTopics("karrot-test", PREFIX)


async def test_a_prefixed_record_is_validated_under_its_logical_topic() -> None:
    rig = Rig(topics=TOPICS)
    listing = item_created("i1")
    message = incoming(listing, offset=3)

    [outcome] = await rig.handler.handle([replace(message, topic=PREFIX + "item-events")])

    # Validation matches the event type to the logical topic: under its physical name the
    # listing would have been dead-lettered as on the wrong topic.
    assert isinstance(outcome, Accepted)
    assert outcome.incoming.topic == "item-events"
    assert rig.store.rows[listing.event_id].status is Status.PROCESSED
    [enriched] = rig.send.to(PREFIX + "enriched.item-events")
    assert rig.enriched_record(enriched)["processing"]["sourceTopic"] == "item-events"
    [fact] = rig.send.to(PREFIX + "karrot-test.facts.items")
    assert fact_value(fact)["source"] == "item-events:0"
    assert rig.metric("karrot_events_processed_total", topic="item-events") == 1
    assert all(record[0].startswith(PREFIX) for record in rig.send.delivered)


async def test_a_prefixed_poison_record_goes_to_the_prefixed_dead_letters() -> None:
    rig = Rig(topics=TOPICS)
    poison = incoming(topic=PREFIX + "item-events", value=b"\x00not avro", offset=9)
    sale = incoming(payment_completed("i2"), offset=1)

    outcomes = await rig.handler.handle([poison, replace(sale, topic=PREFIX + sale.topic)])

    assert [type(o) for o in outcomes] == [Rejected, Accepted]
    [letter] = rig.send.to(PREFIX + "dlq.item-events")
    assert letter[2] == b"\x00not avro"
    headers = headers_of(letter)
    assert headers[ORIGINAL_TOPIC] == b"item-events"  # the contract's name, not the physical
    assert headers["original_offset"] == b"9"
    assert rig.send.to("dlq.item-events") == []
    assert {record[0] for record in rig.send.delivered} == {
        PREFIX + "dlq.item-events",
        PREFIX + "enriched.payment-events",
        TOPICS.item_facts,
        TOPICS.seller_facts,
        TOPICS.volume_facts,
    }
    assert (
        rig.metric(
            "karrot_events_dead_lettered_total", topic="item-events", reason="UndecodableMessage"
        )
        == 1
    )


async def test_a_record_outside_the_prefix_is_a_bug_not_a_dead_letter() -> None:
    rig = Rig(topics=TOPICS)

    with pytest.raises(ValueError, match="not under the prefix"):
        await rig.handler.handle([incoming(item_created("i3"))])
    assert rig.send.delivered == []
