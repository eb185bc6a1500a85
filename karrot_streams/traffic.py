"""Realistic marketplace traffic in the contract's Avro format: demo source, test input, load.

Many small sellers and a few large ones; items in Korean categories; payments for listed items;
chat messages, some of them with the phone numbers and bank accounts scammers use. A share of
the records can be poison (garbage bytes, wrong magic byte, unknown schema id, invalid events).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from karrot_streams.avro.codec import encode
from karrot_streams.avro.framing import frame
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import KafkaConnection, as_connection
from karrot_streams.events.model import Event
from karrot_streams.events.topics import TopicNames
from karrot_streams.events.types import PAYLOAD_RECORD_OF, TOPIC_OF, EventType

CATEGORIES = (
    "디지털기기",
    "생활가전",
    "가구/인테리어",
    "유아동",
    "의류",
    "도서",
    "스포츠/레저",
    "Games",
)
REGIONS = ("서울 강남구", "서울 마포구", "경기 성남시", "부산 해운대구", "제주 제주시")
CHAT_LINES = (
    "안녕하세요, 아직 판매 중인가요?",
    "네고 가능할까요?",
    "내일 저녁 7시에 역 앞에서 직거래 가능해요",
    "010-1234-5678 로 연락주세요",
    "선입금 해주시면 택배로 보내드릴게요. 국민 123456-01-234567",
    "카톡으로 얘기해요 open.kakao.com/o/abc",
)


@dataclass(frozen=True)
class TrafficSpec:
    count: int = 1000
    poison_share: float = 0.0
    sellers: int = 200
    seed: int = 7
    #: Prefix for every id and category, so runs sharing a cluster can tell their data apart.
    tag: str = ""
    start: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Record:
    """One record to produce: a valid event, or poison bytes with what makes it poison."""

    topic: str
    key: bytes
    event: Event | None = None
    raw: bytes | None = None
    poison: str | None = None


def _seller(rng: random.Random, sellers: int, tag: str) -> str:
    # Pareto ranks: most sales go to a few power sellers, the long tail sells once or twice.
    rank = min(int(rng.paretovariate(1.2)) - 1, sellers - 1)
    return f"{tag}seller-{rank:05d}"


def _event(event_type: EventType, aggregate_id: str, at: datetime, **payload: Any) -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        aggregate_id=aggregate_id,
        occurred_at=at,
        payload_record=PAYLOAD_RECORD_OF[event_type],
        payload=payload,
        source="karrot-traffic",
    )


def valid_events(spec: TrafficSpec) -> Iterator[Event]:
    """An endless, deterministic stream of valid events for ``spec.seed``."""
    rng = random.Random(spec.seed)  # noqa: S311  test data, not secrets
    items: list[tuple[str, str, int]] = []  # item id, seller id, price
    tag = spec.tag
    n = 0
    while True:
        n += 1
        at = spec.start + timedelta(milliseconds=n * 37)
        roll = rng.random()
        if roll < 0.1:
            user = f"{tag}user-{n:07d}"
            yield _event(
                EventType.USER_CREATED,
                user,
                at,
                userId=user,
                email=f"{user}@karrot.example",
                nickname=f"당근{n}",
                region=rng.choice(REGIONS),
            )
        elif roll < 0.45 or not items:
            item = f"{tag}item-{n:07d}"
            seller = _seller(rng, spec.sellers, tag)
            price = rng.choice((0, 1000, 5000, 12000, 45000, 150000, 890000, 1200000))
            items.append((item, seller, price))
            yield _event(
                EventType.ITEM_CREATED,
                item,
                at,
                itemId=item,
                sellerId=seller,
                title=f"중고 물품 {n}",
                price=price,
                category=tag + rng.choice(CATEGORIES),
                region=rng.choice(REGIONS),
            )
        elif roll < 0.8:
            item, seller, price = rng.choice(items)
            payment = f"{tag}pay-{n:07d}"
            kind = (
                EventType.PAYMENT_COMPLETED if rng.random() < 0.6 else EventType.PAYMENT_REQUESTED
            )
            yield _event(
                kind,
                payment,
                at,
                paymentId=payment,
                buyerId=f"{tag}user-{rng.randrange(1, n + 1):07d}",
                sellerId=seller,
                itemId=item,
                amount=max(price, 1000),
            )
        else:
            room = f"{tag}room-{rng.randrange(1, 500):04d}"
            yield _event(
                EventType.CHAT_MESSAGE_SENT,
                room,
                at,
                chatRoomId=room,
                senderId=f"{tag}user-{rng.randrange(1, n + 1):07d}",
                message=rng.choice(CHAT_LINES),
            )


POISON_KINDS = ("garbage", "magic", "unknown-schema", "invalid-event", "truncated")


def poison_record(rng: random.Random, event: Event, writers: Mapping[str, WriterSchema]) -> Record:
    kind = rng.choice(POISON_KINDS)
    topic = TOPIC_OF[event.event_type]
    key = event.aggregate_id.encode()
    writer = writers[topic]
    if kind == "garbage":
        raw = rng.randbytes(rng.randrange(0, 64))
    elif kind == "magic":
        raw = b"\x01" + encode(writer.schema_id, writer.parsed, event.to_avro())[1:]
    elif kind == "unknown-schema":
        raw = frame(987_654_321, b"\x00\x02")
    elif kind == "truncated":
        raw = encode(writer.schema_id, writer.parsed, event.to_avro())[:-3]
    else:
        payload = dict(event.payload)
        field_name = next(iter(payload))
        payload[field_name] = "   "  # blank required field: fails validation
        raw = encode(writer.schema_id, writer.parsed, replace(event, payload=payload).to_avro())
        return Record(topic, key, event=replace(event, payload=payload), raw=raw, poison=kind)
    return Record(topic, key, raw=raw, poison=kind)


def records(spec: TrafficSpec, writers: Mapping[str, WriterSchema]) -> Iterator[Record]:
    rng = random.Random(spec.seed + 1)  # noqa: S311
    for count, event in enumerate(valid_events(spec)):
        if count >= spec.count:
            return
        if spec.poison_share and rng.random() < spec.poison_share:
            yield poison_record(rng, event, writers)
        else:
            topic = TOPIC_OF[event.event_type]
            writer = writers[topic]
            raw = encode(writer.schema_id, writer.parsed, event.to_avro())
            yield Record(topic, event.aggregate_id.encode(), event=event, raw=raw)


async def produce(
    kafka: str | KafkaConnection,
    batch: list[Record],
    rate: float | None = None,
    acks: str | int = "all",
    names: TopicNames | None = None,
) -> float:
    """Produce ``batch`` (at ``rate`` per second, or as fast as possible); return seconds taken.

    The records name logical topics; ``names`` says where they are on the broker.
    """
    names = names or TopicNames()
    producer = AIOKafkaProducer(
        **as_connection(kafka).client_kwargs(), acks=acks, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for n, record in enumerate(batch):
            pending.append(
                await producer.send(names.physical(record.topic), value=record.raw, key=record.key)
            )
            if rate:
                ahead = n / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started
