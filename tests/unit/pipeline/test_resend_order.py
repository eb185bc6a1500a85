"""What the replay guard needs from the pipeline's sends, and what it does with a resend.

The guard takes a fact at or below its source's mark for a redelivery. BatchHandler resends the
records the broker refused *after* the ones it took; if the broker refused an earlier fact of a
key and took a later fact of the same key and source, the resent earlier one lands behind it.
Each fact names the fact of its chain (topic, key, source, and day for the daily windows) sent
just before it in the same send (``prev``): the later fact, whose ``prev`` is above the mark,
leaves the positions it skipped over *owed*, and the late fact is applied from there. A replay,
or a second copy of the late fact, is not owed and is skipped: every sale counts once. These
tests pin that chain down with fakes.
"""

from __future__ import annotations

from typing import Any

import orjson

from karrot_streams.pipeline.handler import Outgoing
from karrot_streams.runtime.producer import Record
from karrot_streams.tables.agents import Stages
from karrot_streams.tables.declarations import Tables
from tests.unit.pipeline.fakes import FakeSend, incoming, payment_completed
from tests.unit.pipeline.test_batch_handler import TOPICS, Rig
from tests.unit.runtime.test_producer import FakeAiokafka, sender
from tests.unit.tables.fakes import FakeEvent, FakeTable, Journal, fake_tables, partition_of


async def no_effects(records: list[Any]) -> None:
    raise AssertionError("the seller stage emits nothing")


def seller_batch(send: FakeSend) -> list[tuple[Any, Any]]:
    """What reached the broker's seller facts, in that order, as the seller stage reads it."""
    batch = []
    for n, (topic, key, value, _) in enumerate(send.to(TOPICS.seller_facts)):
        assert key is not None and value is not None
        batch.append((FakeEvent(topic, partition_of(key), n, key, value), orjson.loads(value)))
    return batch


def sellers_of(tables: Tables) -> dict[str, Any]:
    sellers = tables.sellers
    assert isinstance(sellers, FakeTable)
    return sellers.data


async def sellers_after(send: FakeSend) -> dict[str, Any]:
    """The sellers table after the seller stage reads what reached the broker, in that order."""
    tables = fake_tables(Journal())
    await Stages(tables, TOPICS, no_effects).sellers(seller_batch(send))
    return sellers_of(tables)


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


async def test_a_late_fact_delivered_twice_counts_once() -> None:
    # Refused (offset 1 taken ahead of it), then resent: taken, but its ack lost; resent again.
    class LateTwice(FakeSend):
        async def __call__(self, records: Any) -> list[tuple[Outgoing, BaseException]]:
            failed = await super().__call__(records)
            lost_acks = [r for r in records if first_seller_fact(r) and len(self.calls) == 2]
            return failed + [(r, TimeoutError("ack lost")) for r in lost_acks]

    rig = Rig(send=LateTwice(fail_record=first_seller_fact, fail_record_times=1))
    await rig.handler.handle(
        [incoming(payment_completed("i1"), offset=0), incoming(payment_completed("i2"), offset=1)]
    )
    delivered = [orjson.loads(r[2] or b"")["offset"] for r in rig.send.to(TOPICS.seller_facts)]
    assert delivered == [1, 0, 0]

    sellers = await sellers_after(rig.send)
    assert sellers["s1"]["sales_count"] == 2
    assert sellers["s1"]["applied"] == {"payment-events:0": 1}
    assert "owed" not in sellers["s1"]  # nothing left owed: the value as before


async def test_a_late_fact_replayed_after_a_crash_counts_once() -> None:
    rig = Rig(send=FakeSend(fail_record=first_seller_fact, fail_record_times=1))
    await rig.handler.handle(
        [incoming(payment_completed("i1"), offset=0), incoming(payment_completed("i2"), offset=1)]
    )
    batch = seller_batch(rig.send)  # offset 1, then the late offset 0
    stages = Stages(fake_tables(Journal()), TOPICS, no_effects)

    # The stage applies offset 1 alone (offset 0 owed), writes, and crashes before its commit;
    # it reads both again, applies the late one, writes, crashes again; reads both again.
    await stages.sellers(batch[:1])
    assert sellers_of(stages.tables)["s1"]["owed"] == {"payment-events:0": [[0, 0]]}
    await stages.sellers(batch)
    await stages.sellers(batch)

    assert sellers_of(stages.tables)["s1"]["sales_count"] == 2


async def test_a_late_fact_counts_in_its_daily_volume_window() -> None:
    rig = Rig(send=FakeSend(fail_record=first_volume_fact, fail_record_times=1))
    await rig.handler.handle(
        [incoming(payment_completed("i1"), offset=0), incoming(payment_completed("i2"), offset=1)]
    )
    batch = []
    for n, (topic, key, value, _) in enumerate(rig.send.to(TOPICS.volume_facts)):
        assert key is not None and value is not None
        batch.append((FakeEvent(topic, partition_of(key), n, key, value), orjson.loads(value)))
    assert [fact["offset"] for _, fact in batch] == [1, 0]
    assert [fact.get("prev") for _, fact in batch] == [0, None]
    tables = fake_tables(Journal())
    stages = Stages(tables, TOPICS, no_effects)

    await stages.windowed_counter(tables.payment_daily, lambda _: 1)(batch)

    daily = tables.payment_daily
    assert isinstance(daily, FakeTable)
    assert [value["count"] for value in daily.data.values()] == [2]


def first_volume_fact(record: Outgoing) -> bool:
    return record[0] == TOPICS.volume_facts and orjson.loads(record[2] or b"")["offset"] == 0
