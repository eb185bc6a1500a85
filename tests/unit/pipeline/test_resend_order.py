"""What the replay guard needs from the pipeline's sends: a key's facts from one source in order.

The guard takes a fact at or below its source's mark for a redelivery. BatchHandler resends the
records the broker refused *after* the ones it took; if the broker refused an earlier fact of a
key and took a later fact of the same key and source, the resent earlier one lands behind it
and is skipped as a replay: a sale lost, silently. These tests pin that chain down with fakes.
"""

from __future__ import annotations

from typing import Any

import orjson

from karrot_streams.pipeline.handler import Outgoing
from karrot_streams.runtime.producer import Record
from karrot_streams.tables.agents import Stages
from tests.unit.pipeline.fakes import FakeSend, incoming, payment_completed
from tests.unit.pipeline.test_batch_handler import TOPICS, Rig
from tests.unit.runtime.test_producer import FakeAiokafka, sender
from tests.unit.tables.fakes import FakeEvent, FakeTable, Journal, fake_tables, partition_of


async def sellers_after(send: FakeSend) -> dict[str, Any]:
    """The sellers table after the seller stage reads what reached the broker, in that order."""
    tables = fake_tables(Journal())

    async def no_effects(records: list[Any]) -> None:
        raise AssertionError("the seller stage emits nothing")

    batch = []
    for n, (topic, key, value, _) in enumerate(send.to(TOPICS.seller_facts)):
        assert key is not None and value is not None
        batch.append((FakeEvent(topic, partition_of(key), n, key, value), orjson.loads(value)))
    await Stages(tables, TOPICS, no_effects).sellers(batch)
    sellers = tables.sellers
    assert isinstance(sellers, FakeTable)
    return sellers.data


def first_seller_fact(record: Outgoing) -> bool:
    return record[0] == TOPICS.seller_facts and orjson.loads(record[2] or b"")["offset"] == 0


async def test_a_fact_delivered_but_reported_failed_counts_once() -> None:
    # The broker took it and the acknowledgement was lost: the resend is a true duplicate.
    class DeliveredThenRefused(FakeSend):
        async def __call__(self, records: Any) -> list[tuple[Outgoing, BaseException]]:
            failed = await super().__call__(records)
            lost_acks = [r for r in records if first_seller_fact(r) and len(self.calls) == 1]
            return failed + [(r, TimeoutError("ack lost")) for r in lost_acks]

    rig = Rig(send=DeliveredThenRefused())
    await rig.handler.handle(
        [incoming(payment_completed("i1"), offset=0), incoming(payment_completed("i2"), offset=1)]
    )

    assert (await sellers_after(rig.send))["s1"]["sales_count"] == 2


async def test_a_refused_fact_resent_behind_a_later_one_still_counts() -> None:
    rig = Rig(send=FakeSend(fail_record=first_seller_fact, fail_record_times=1))
    await rig.handler.handle(
        [incoming(payment_completed("i1"), offset=0), incoming(payment_completed("i2"), offset=1)]
    )
    delivered = [orjson.loads(r[2] or b"")["offset"] for r in rig.send.to(TOPICS.seller_facts)]
    assert delivered == [1, 0]  # the order the broker got them in

    assert (await sellers_after(rig.send))["s1"]["sales_count"] == 2


async def test_the_batch_producer_refuses_only_a_suffix_of_a_partition() -> None:
    class RefusesFirstBatch(FakeAiokafka):
        async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
            if not self.sent:
                self.sent.append(("refused", topic, partition))
                raise TimeoutError("KafkaTimeoutError: accumulator full")
            return await super().send_batch(batch, topic, partition=partition)

    fake = RefusesFirstBatch(capacity=1)  # one record per batch: two chunks of partition 0
    producer, _ = sender(fake)
    first: Record = ("facts", bytes([0]), b"offset 0", None)
    second: Record = ("facts", bytes([4]), b"offset 1", None)  # same partition as the first

    failed = [record for record, _ in await producer.send_all([first, second])]

    # Were the second taken while the first is refused, the resend of the first would land
    # behind it (what the test above shows costs a count).
    assert failed == [first, second]
