"""Dead-letter redrive on the real stack, through the HTTP API and the command line.

Chat messages of 1,500 characters are dead-lettered by a worker that keeps the contract's limit
of 1,000; the worker is restarted (same consumer group) with ``KARROT_MAX_MESSAGE_LENGTH=2000``,
and the letters are redriven: each event is then processed once, and redriving again does
nothing. A 2,500-character message fails again after its redrive and stays in the DLQ.

The topics are shared with other tests, and their workers (other consumer groups) read these
events too, and dead-letter them as well. So this test's letters are told apart by their
``exception_message`` (its first worker allows 1,200 characters, a limit no other test uses, and
its second 2,000), and real redrives select letters by partition and offset only: a time-window
redrive could pick up other tests' letters. Time windows are exercised with dry runs, which
change nothing.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from karrot_streams.avro import schemas
from karrot_streams.avro.codec import decode, encode
from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.dlq.dead_letters import DeadLetter
from karrot_streams.events.model import Event
from karrot_streams.events.types import PAYLOAD_RECORD_OF, EventType
from karrot_streams.settings import Settings
from tests.support import kafka, store
from tests.support.worker import ADMIN_TOKEN, API_TOKEN, WorkerProcess, new_app_id

pytestmark = pytest.mark.integration

T = TypeVar("T")
INVALID = "karrot_streams.events.failures.InvalidEvent"
DLQ = "dlq.chat-events"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API = {"Authorization": f"Bearer {API_TOKEN}"}
EVENTUALLY_S = 90.0
#: The first worker's chat-message limit: 1,500 characters are too many, as with the contract's
#: 1,000, and no other test's worker says "at most 1200".
STRICT_LENGTH = 1200


def chat_event(tag: str, n: int, length: int) -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type=EventType.CHAT_MESSAGE_SENT,
        aggregate_id=f"{tag}room-{n}",
        occurred_at=datetime.now(UTC).replace(microsecond=0),
        payload_record=PAYLOAD_RECORD_OF[EventType.CHAT_MESSAGE_SENT],
        payload={
            "chatRoomId": f"{tag}room-{n}",
            "senderId": f"{tag}u-{n}",
            "message": "당" * length,
        },
        source="redrive-test",
    )


async def produce(
    bootstrap: str, writer: WriterSchema, events: list[Event]
) -> dict[str, tuple[int, int]]:
    """Each event to chat-events with a trace header; its (partition, offset) by event id."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        positions = {}
        for event in events:
            metadata = await producer.send_and_wait(
                "chat-events",
                encode(writer.schema_id, writer.parsed, event.to_avro()),
                key=event.aggregate_id.encode(),
                headers=[("trace", event.event_id.encode())],
            )
            positions[event.event_id] = (metadata.partition, metadata.offset)
        return positions
    finally:
        await producer.stop()


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    deadline = time.monotonic() + EVENTUALLY_S
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {EVENTUALLY_S:g}s")
        await asyncio.sleep(0.5)


async def tagged(bootstrap: str, topic: str, tag: str) -> list[kafka.Consumed]:
    return [
        m
        for m in await kafka.read_all(bootstrap, topic)
        if m.key is not None and m.key.startswith(tag.encode())
    ]


def as_letter(message: kafka.Consumed) -> DeadLetter:
    return DeadLetter(
        message.topic,
        message.partition,
        message.offset,
        0,
        message.key,
        message.value,
        message.headers,
    )


async def wait_committed(
    bootstrap: str, group: str, positions: list[tuple[int, int]], timeout_s: float = 60.0
) -> None:
    """Until the group's committed offsets on chat-events are past every position."""
    wanted: dict[TopicPartition, int] = {}
    for partition, offset in positions:
        tp = TopicPartition("chat-events", partition)
        wanted[tp] = max(offset, wanted.get(tp, -1))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            offsets = await admin.list_consumer_group_offsets(group)
            if all(tp in offsets and offsets[tp].offset > o for tp, o in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"offsets not committed past {wanted}: {offsets}")
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from karrot_streams.cli import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    return int(process.returncode or 0), out.decode()


async def redriven_from(bootstrap: str, tag: str) -> dict[str, int]:
    """How many records of this test each dead letter was redriven to (by ``redriven_from``)."""
    counts: dict[str, int] = {}
    for message in await tagged(bootstrap, "chat-events", tag):
        source = dict(message.headers).get("redriven_from")
        if source is not None:
            counts[source.decode()] = counts.get(source.decode(), 0) + 1
    return counts


def iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_redrive_after_the_rule_is_relaxed(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    bootstrap = settings.kafka_bootstrap
    tag = f"rd{uuid.uuid4().hex[:6]}-"
    app_id = new_app_id()
    strict = worker_factory(
        app_id=app_id,
        data_dir=tmp_path / "data",
        log_path=tmp_path / "1.log",
        extra_env={"KARROT_MAX_MESSAGE_LENGTH": str(STRICT_LENGTH)},
    )
    strict.start()
    await strict.wait_ready()

    poison = [chat_event(tag, n, 1500) for n in range(3)]
    hopeless = chat_event(tag, 9, 2500)
    events = [*poison, hopeless]
    inputs = await produce(bootstrap, input_writers["chat-events"], events)
    found = await store.wait_for_statuses(
        settings.database_dsn, {e.event_id: "FAILED" for e in events}
    )
    assert {i: s for i, (s, _) in found.items()} == {e.event_id: "FAILED" for e in events}

    async def first_letters() -> dict[str, DeadLetter]:
        """The letter this test's worker wrote for each event (other workers write theirs)."""
        found = {}
        for message in await tagged(bootstrap, DLQ, tag):
            letter = as_letter(message)
            mine = (letter.exception_message or "").endswith(f"at most {STRICT_LENGTH}")
            if mine and letter.redrive_count == 0:
                found[letter.header("trace") or ""] = letter
        return found

    by_event = await eventually(
        first_letters, lambda found: len(found) == len(events), "a dead letter for each event"
    )
    for letter in by_event.values():
        assert letter.exception_class == INVALID
        assert letter.retry_count == 1
        assert letter.redrive_count == 0

    # Restart in the same consumer group, once the poison's offsets are committed (a worker that
    # read them again with the relaxed rule would process them without any redrive).
    await wait_committed(bootstrap, app_id, list(inputs.values()))
    strict.stop()
    relaxed = worker_factory(
        app_id=app_id,
        data_dir=tmp_path / "data",
        log_path=tmp_path / "2.log",
        extra_env={"KARROT_MAX_MESSAGE_LENGTH": "2000"},
    )
    relaxed.start()
    await relaxed.wait_ready()

    failed_at = sorted(x.failed_at for x in by_event.values() if x.failed_at is not None)
    window = {
        "since": iso_ms(failed_at[0]),
        "until": iso_ms(failed_at[-1] + timedelta(milliseconds=1)),
        "exceptionClass": INVALID,
    }
    mine = {(x.partition, x.offset) for x in by_event.values()}

    async with httpx.AsyncClient(base_url=relaxed.url, timeout=60.0) as http:

        async def listing() -> dict[tuple[int, int], dict[str, Any]]:
            answer = await http.get(
                f"/api/v1/dlq/{DLQ}/messages",
                params={**window, "limit": "1000"},
                headers=API,
            )
            assert answer.status_code == 200, answer.text
            return {
                (m["partition"], m["offset"]): m
                for m in answer.json()["messages"]
                if (m["partition"], m["offset"]) in mine
            }

        listed = await listing()
        assert set(listed) == mine
        for event in events:
            letter = by_event[event.event_id]
            message = listed[(letter.partition, letter.offset)]
            assert message["topic"] == DLQ
            assert message["redriven"] is False
            assert message["key"] == event.aggregate_id
            assert message["headers"]["exception_class"] == INVALID
            assert message["headers"]["trace"] == event.event_id
            assert message["value"]["eventId"] == event.event_id
            assert message["value"]["payload"]["message"] == event.payload["message"]
            assert base64.b64decode(message["valueBase64"]) == letter.value

        # An API token may look but not redrive.
        denied = await http.post(f"/api/v1/dlq/{DLQ}/redrive", json={"dryRun": True}, headers=API)
        assert denied.status_code == 403, denied.text
        assert denied.json()["code"] == "FORBIDDEN"

        # Dry run over the time window: all four would be redriven, nothing changes.
        dry = await http.post(
            f"/api/v1/dlq/{DLQ}/redrive", json={**window, "dryRun": True}, headers=ADMIN
        )
        assert dry.status_code == 200, dry.text
        body = dry.json()
        assert body["dryRun"] is True
        assert body["redriven"] == 0
        statuses = {(m["partition"], m["offset"]): m for m in body["messages"]}
        assert mine <= set(statuses)
        for position in mine:
            assert statuses[position]["status"] == "WOULD_REDRIVE"
            assert statuses[position]["exceptionClass"] == INVALID
            assert statuses[position]["target"] is None

        # The command line's dry run lists them too.
        code, out = await cli(
            "dlq",
            "redrive",
            DLQ,
            "--exception-class",
            INVALID,
            "--since",
            window["since"],
            "--until",
            window["until"],
            "--dry-run",
        )
        assert code == 0, out
        rows = [line.split() for line in out.splitlines()]
        for partition, offset in mine:
            assert [str(partition), str(offset)] in [row[:2] for row in rows]
            row = next(r for r in rows if r[:2] == [str(partition), str(offset)])
            assert row[3:5] == [INVALID, "WOULD_REDRIVE"]
        assert out.splitlines()[-1].startswith("dry run: ")
        assert await redriven_from(bootstrap, tag) == {}
        assert all(m["redriven"] is False for m in (await listing()).values())

        # Redrive the three 1,500-character letters, the first by two requests at once.
        async def redrive(letter: DeadLetter) -> dict[str, Any]:
            answer = await http.post(
                f"/api/v1/dlq/{DLQ}/redrive",
                json={"partition": letter.partition, "offset": letter.offset},
                headers=ADMIN,
            )
            assert answer.status_code == 200, answer.text
            result: dict[str, Any] = answer.json()
            assert result["selected"] == 1
            return result

        first = by_event[poison[0].event_id]
        racing = await asyncio.gather(redrive(first), redrive(first))
        assert sorted(r["redriven"] for r in racing) == [0, 1]
        assert sorted(r["alreadyRedriven"] for r in racing) == [0, 1]
        targets = {}
        for event in poison:
            letter = by_event[event.event_id]
            results = racing if letter is first else [await redrive(letter)]
            message = next(r["messages"][0] for r in results if r["redriven"] == 1)
            assert message["status"] == "REDRIVEN"
            assert message["target"]["topic"] == "chat-events"
            targets[event.event_id] = message["target"]

        processed = await store.wait_for_statuses(
            settings.database_dsn, {e.event_id: "PROCESSED" for e in poison}
        )
        assert {i: s for i, (s, _) in processed.items()} == {
            e.event_id: "PROCESSED" for e in poison
        }, relaxed.tail()

        # Each processed once: one enriched record per event.
        enriched_schema = schemas.load("enriched.chat-events-value")

        async def enriched_ids() -> list[str]:
            return [
                decode(enriched_schema.parsed, unframe(m.value)[1])["eventId"]
                for m in await tagged(bootstrap, "enriched.chat-events", tag)
            ]

        seen = await eventually(enriched_ids, lambda ids: len(ids) >= 3, "enriched events")
        assert sorted(seen) == sorted(e.event_id for e in poison)

        # The redriven records: original key, value and headers, plus the redrive's own.
        originals = set(inputs.values())
        redriven = [
            m
            for m in await tagged(bootstrap, "chat-events", tag)
            if (m.partition, m.offset) not in originals
        ]
        assert len(redriven) == 3
        for event in poison:
            letter = by_event[event.event_id]
            record = next(m for m in redriven if m.key == event.aggregate_id.encode())
            assert record.value == letter.value
            assert record.headers == (
                ("trace", event.event_id.encode()),
                ("retry_count", b"1"),
                ("redrive_count", b"1"),
                ("redriven_from", letter.address.encode()),
            )
            assert targets[event.event_id] == {
                "topic": "chat-events",
                "partition": record.partition,
                "offset": record.offset,
            }

        listed = await listing()
        for event in events:
            letter = by_event[event.event_id]
            assert listed[(letter.partition, letter.offset)]["redriven"] is (event in poison)

        # Redriving the same selections again does nothing.
        for event in poison:
            again = await redrive(by_event[event.event_id])
            assert (again["redriven"], again["alreadyRedriven"]) == (0, 1)
            assert again["messages"][0]["status"] == "ALREADY_REDRIVEN"
            assert again["messages"][0]["target"] == targets[event.event_id]
        dry = await http.post(
            f"/api/v1/dlq/{DLQ}/redrive", json={**window, "dryRun": True}, headers=ADMIN
        )
        statuses = {(m["partition"], m["offset"]): m["status"] for m in dry.json()["messages"]}
        for event in events:
            letter = by_event[event.event_id]
            expected = "ALREADY_REDRIVEN" if event in poison else "WOULD_REDRIVE"
            assert statuses[(letter.partition, letter.offset)] == expected
        assert await redriven_from(bootstrap, tag) == {
            by_event[e.event_id].address: 1 for e in poison
        }

        # 2,500 characters are too many even now: the redriven message is dead-lettered again,
        # with every attempt counted, and stays there.
        old = by_event[hopeless.event_id]
        result = await redrive(old)
        assert result["redriven"] == 1

        async def dead_again() -> list[DeadLetter]:
            """Letters of the redriven message written by this test's worker (the relaxed one)."""
            return [
                letter
                for letter in map(as_letter, await tagged(bootstrap, DLQ, tag))
                if letter.header("redriven_from") == old.address
                and (letter.exception_message or "").endswith("at most 2000")
            ]

        new = (await eventually(dead_again, lambda found: len(found) >= 1, "a new letter"))[0]
        assert len(await dead_again()) == 1
        assert (new.partition, new.offset) != (old.partition, old.offset)
        assert new.key == old.key
        assert new.value == old.value
        assert new.retry_count == 2
        assert new.redrive_count == 1
        assert new.exception_class == INVALID
        assert new.header("trace") == hopeless.event_id
        assert new.header("original_topic") == "chat-events"
        status = await store.statuses(settings.database_dsn, [hopeless.event_id])
        assert status[hopeless.event_id][0] == "FAILED"

        answer = await http.get(
            f"/api/v1/dlq/{DLQ}/messages",
            params={"since": iso_ms(new.failed_at or datetime.now(UTC)), "limit": "1000"},
            headers=API,
        )
        assert answer.status_code == 200, answer.text
        fresh = next(
            m
            for m in answer.json()["messages"]
            if (m["partition"], m["offset"]) == (new.partition, new.offset)
        )
        assert fresh["redriven"] is False
        assert fresh["headers"]["redrive_count"] == "1"
        assert fresh["headers"]["retry_count"] == "2"
        await asyncio.sleep(5)  # nothing redrives it on its own
        once_each = {by_event[e.event_id].address: 1 for e in events}
        assert await redriven_from(bootstrap, tag) == once_each


async def test_redrive_errors(worker_url: str) -> None:
    async with httpx.AsyncClient(base_url=worker_url, timeout=60.0) as http:
        unknown = await http.post("/api/v1/dlq/chat-events/redrive", json={}, headers=ADMIN)
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["code"] == "NOT_FOUND"
        listing = await http.get("/api/v1/dlq/dlq.nothing/messages", headers=API)
        assert listing.status_code == 404
        anonymous = await http.get(f"/api/v1/dlq/{DLQ}/messages")
        assert anonymous.status_code == 401
        forbidden = await http.post(f"/api/v1/dlq/{DLQ}/redrive", json={}, headers=API)
        assert forbidden.status_code == 403
        assert set(forbidden.json()) == {"code", "message", "timestamp", "path", "details"}
        bodies: list[Any] = [
            {"partition": 0},
            {"dryRun": "yes"},
            {"since": "soon"},
            {"x": 1},
            [],
            "{",
        ]
        for bad in bodies:
            answer = await http.post(
                f"/api/v1/dlq/{DLQ}/redrive",
                content=bad if isinstance(bad, str) else None,
                json=None if isinstance(bad, str) else bad,
                headers=ADMIN,
            )
            assert answer.status_code == 400, (bad, answer.text)
            assert answer.json()["code"] == "INVALID_REQUEST"
        missing = await http.post(
            f"/api/v1/dlq/{DLQ}/redrive",
            json={"partition": 0, "offset": 2**62, "dryRun": True},
            headers=ADMIN,
        )
        assert missing.status_code == 404, missing.text
        bad_query = await http.get(f"/api/v1/dlq/{DLQ}/messages?limit=x", headers=API)
        assert bad_query.status_code == 400
