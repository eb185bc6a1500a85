"""A worker under ``KARROT_TOPIC_PREFIX`` on the real stack: it reads and writes only topics
behind its prefix, and speaks the contract's logical names everywhere else.

Its topics are its own, so nothing here has to be told apart from other tests' events: every
record on them is this test's, and the unprefixed topics must hold none of it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from karrot_streams.avro import schemas
from karrot_streams.avro.codec import decode, encode
from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import kafka_connection
from karrot_streams.events.enrichment import normalize_category
from karrot_streams.events.topics import TopicNames
from karrot_streams.events.types import EventType
from karrot_streams.provision import contract_topics, create_topics
from karrot_streams.settings import Settings
from karrot_streams.traffic import Record, TrafficSpec, produce, valid_events
from tests.support import kafka, store
from tests.support.worker import ADMIN_TOKEN, API_TOKEN, WorkerProcess, new_app_id

pytestmark = pytest.mark.integration

T = TypeVar("T")
API = {"Authorization": f"Bearer {API_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EVENTUALLY_S = 90.0


async def eventually(read: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    deadline = time.monotonic() + EVENTUALLY_S
    value = await read()
    while not done(value) and time.monotonic() < deadline:
        await asyncio.sleep(1)
        value = await read()
    return value


@pytest.fixture
async def names(settings: Settings) -> AsyncIterator[TopicNames]:
    """A prefix of this test's own; its topics (changelogs and facts too) deleted after it."""
    names = TopicNames(f"it-{uuid.uuid4().hex[:8]}.")
    await create_topics(settings, contract_topics(names))
    yield names
    admin = AIOKafkaAdminClient(**kafka_connection(settings).client_kwargs())
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(names.prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


async def test_a_prefixed_worker_stays_behind_its_prefix(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    names: TopicNames,
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = worker_factory(
        app_id=new_app_id(),
        data_dir=tmp_path / "data",
        log_path=tmp_path / "worker.log",
        extra_env={"KARROT_TOPIC_PREFIX": names.prefix},
        # Its input topics are new: there are no other runs' events to skip.
        from_end=False,
    )
    worker.start()
    await worker.wait_ready()

    tag = f"p{uuid.uuid4().hex[:6]}-"
    writer = input_writers["item-events"]
    listing = next(
        e
        for e in valid_events(TrafficSpec(count=20, tag=tag, seed=3))
        if e.event_type is EventType.ITEM_CREATED
    )
    bad_price = replace(
        listing, event_id=str(uuid.uuid4()), payload={**listing.payload, "price": -1}
    )
    key = listing.aggregate_id.encode()
    batch = [
        Record(
            "item-events", key, listing, encode(writer.schema_id, writer.parsed, listing.to_avro())
        ),
        Record("item-events", key, raw=b"\xde\xad\xbe\xef", poison="garbage"),
        Record(
            "item-events",
            key,
            bad_price,
            encode(writer.schema_id, writer.parsed, bad_price.to_avro()),
            poison="invalid-event",
        ),
    ]
    await produce(settings.kafka_bootstrap, batch, names=names)

    found = await store.wait_for_statuses(
        settings.database_dsn, {listing.event_id: "PROCESSED", bad_price.event_id: "FAILED"}
    )
    assert found[listing.event_id][0] == "PROCESSED", worker.tail()
    assert found[bad_price.event_id] == ("FAILED", "InvalidEvent: Price cannot be negative")

    # The enriched event on the prefixed topic, naming its logical source topic.
    enriched_writer = schemas.load("enriched.item-events-value")
    enriched = await eventually(
        lambda: kafka.read_all(settings.kafka_bootstrap, names.enriched("item-events")),
        lambda records: len(records) >= 1,
    )
    [forwarded] = enriched
    value = decode(enriched_writer.parsed, unframe(forwarded.value)[1])
    assert value["eventId"] == listing.event_id
    assert value["processing"]["sourceTopic"] == "item-events"

    # The poison on the prefixed dead letters, with the contract's (logical) original topic.
    letters = await eventually(
        lambda: kafka.read_all(settings.kafka_bootstrap, names.dead_letter("item-events")),
        lambda records: len(records) >= 2,
    )
    assert sorted(letter.value or b"" for letter in letters) == sorted(
        record.raw or b"" for record in batch[1:]
    )
    for letter in letters:
        assert dict(letter.headers)["original_topic"] == b"item-events"

    # Nothing of it on the unprefixed topics other workers read.
    for topic in ("item-events", "enriched.item-events", "dlq.item-events"):
        strays = [r for r in await kafka.read_all(settings.kafka_bootstrap, topic) if r.key == key]
        assert strays == [], f"{topic} holds records of the prefixed run"

    async with httpx.AsyncClient(base_url=worker.url, timeout=30) as http:
        # The aggregates read the prefixed facts; the tables (prefixed changelogs) answer.
        category = quote(normalize_category(listing.payload["category"]))

        async def category_stats() -> dict[str, int]:
            answer = await http.get(f"/api/v1/categories/{category}", headers=API)
            assert answer.status_code == 200, answer.text
            stats: dict[str, int] = answer.json()
            return stats

        stats = await eventually(category_stats, lambda x: x["itemCount"] >= 1)
        assert stats["itemCount"] == 1, worker.tail()

        # The API lists the prefixed letters under the logical topic name.
        listing_answer = await http.get("/api/v1/dlq/dlq.item-events/messages", headers=API)
        assert listing_answer.status_code == 200, listing_answer.text
        shown = listing_answer.json()
        assert shown["topic"] == "dlq.item-events"
        assert shown["total"] == 2
        assert {m["topic"] for m in shown["messages"]} == {"dlq.item-events"}
        overview = (await http.get("/api/v1/monitoring/dlq")).json()
        assert overview["topics"]["dlq.item-events"] == {"count": 2}
        assert {x["topic"] for x in overview["recent"]} == {"dlq.item-events"}

        # A redrive goes to the prefixed input topic: the invalid event fails again there and
        # comes back as a new letter of the prefixed dead letters.
        invalid = next(m for m in shown["messages"] if m["value"] is not None)
        redrive = await http.post(
            "/api/v1/dlq/dlq.item-events/redrive",
            json={"partition": invalid["partition"], "offset": invalid["offset"]},
            headers=ADMIN,
        )
        assert redrive.status_code == 200, redrive.text
        [outcome] = redrive.json()["messages"]
        assert outcome["status"] == "REDRIVEN"
        assert outcome["target"]["topic"] == names.physical("item-events")
        again = await eventually(
            lambda: kafka.read_all(settings.kafka_bootstrap, names.dead_letter("item-events")),
            lambda records: len(records) >= 3,
        )
        [redriven] = [r for r in again if dict(r.headers).get("redrive_count") == b"1"]
        assert dict(redriven.headers)["original_topic"] == b"item-events"

        # Published over HTTP: to the prefixed input topic, answered with the logical name.
        published = await http.post(
            "/api/v1/events",
            json={
                "eventType": "ITEM_CREATED",
                "aggregateId": f"{tag}item-http",
                "payload": {
                    "itemId": f"{tag}item-http",
                    "sellerId": f"{tag}seller",
                    "title": "아이폰 15",
                    "price": 850000,
                    "category": "디지털기기",
                },
            },
            headers=API,
        )
        assert published.status_code == 201, published.text
        assert published.json()["topic"] == "item-events"
        event_id = published.json()["eventId"]
        found = await store.wait_for_statuses(settings.database_dsn, {event_id: "PROCESSED"})
        assert found[event_id][0] == "PROCESSED", worker.tail()
    assert [
        r
        for r in await kafka.read_all(settings.kafka_bootstrap, "item-events")
        if r.key == f"{tag}item-http".encode()
    ] == []
