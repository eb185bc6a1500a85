"""``POST /api/v1/events/batch`` on a real worker: a result per event, statuses, order kept."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support.worker import API_TOKEN

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PATH = "/api/v1/events/batch"
ERROR_FIELDS = {"code", "message", "timestamp", "path", "details"}
PUBLISHED_FIELDS = {
    "index",
    "eventId",
    "status",
    "topic",
    "partition",
    "offset",
    "consistencyToken",
}


def suffix() -> str:
    return uuid.uuid4().hex[:10]


def item(item_id: str, price: int = 12000) -> dict[str, Any]:
    return {
        "eventType": "ITEM_CREATED",
        "aggregateId": item_id,
        "payload": {
            "itemId": item_id,
            "sellerId": f"seller-{item_id}",
            "title": "접이식 자전거",
            "price": price,
            "category": "스포츠/레저",
            "region": "서울 마포구",
        },
    }


def chat(room: str, n: int) -> dict[str, Any]:
    return {
        "eventType": "CHAT_MESSAGE_SENT",
        "aggregateId": room,
        "correlationId": f"{room}-{n}",
        "payload": {"chatRoomId": room, "senderId": "u-1", "message": f"메시지 {n}"},
    }


async def post(http: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await http.post(PATH, json=body, headers=AUTH)


async def statuses_of(http: httpx.AsyncClient, event_ids: list[str]) -> dict[str, str]:
    found = {}
    for event_id in event_ids:
        answer = await http.get(f"/api/v1/events/{event_id}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        found[event_id] = answer.json()["status"]
    return found


@pytest.fixture
async def http(worker_url: str) -> Any:
    async with httpx.AsyncClient(base_url=worker_url, timeout=60.0) as client:
        yield client


async def test_mixed_batch_answers_207_with_a_result_each(http: httpx.AsyncClient) -> None:
    s = suffix()
    body = {
        "events": [
            item(f"item-{s}"),
            item(f"bad-{s}", price=-1),
            {
                "eventType": "USER_CREATED",
                "aggregateId": f"user-{s}",
                "payload": {"userId": f"user-{s}", "email": "new@karrot.kr", "nickname": "당근"},
            },
            "not an event",
            {"eventType": "ITEM_SOLD", "aggregateId": "x", "payload": {}},
            {"aggregateId": "x", "payload": {}},
        ]
    }
    answer = await post(http, body)
    assert answer.status_code == 207, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [
        "PUBLISHED",
        "FAILED",
        "PUBLISHED",
        "FAILED",
        "FAILED",
        "FAILED",
    ]
    for result, topic in ((results[0], "item-events"), (results[2], "user-events")):
        assert set(result) == PUBLISHED_FIELDS
        assert result["topic"] == topic
        assert result["consistencyToken"] == (
            f"{topic}:{result['partition']}:{result['offset']}:{result['eventId']}"
        )
        assert uuid.UUID(result["eventId"])
        assert result["partition"] >= 0
        assert result["offset"] >= 0
    assert results[1] == {
        "index": 1,
        "status": "FAILED",
        "code": "EVENT_VALIDATION_FAILED",
        "message": "Price cannot be negative",
        "details": {"field": "payload.price"},
    }
    assert results[3] == {
        "index": 3,
        "status": "FAILED",
        "code": "INVALID_REQUEST",
        "message": "An event must be a JSON object, not a string",
        "details": None,
    }
    assert results[4]["code"] == "EVENT_VALIDATION_FAILED"
    assert results[4]["details"] == {"field": "eventType"}
    assert results[5] == {
        "index": 5,
        "status": "FAILED",
        "code": "EVENT_VALIDATION_FAILED",
        "message": "Event type is required (eventType)",
        "details": {"field": "eventType"},
    }

    # The published ones are stored and move on to PROCESSED; the refused ones left no row.
    published = [results[0]["eventId"], results[2]["eventId"]]
    deadline = time.monotonic() + 90
    found = await statuses_of(http, published)
    while set(found.values()) != {"PROCESSED"} and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        found = await statuses_of(http, published)
    assert set(found.values()) == {"PROCESSED"}


async def test_all_published_is_200(http: httpx.AsyncClient) -> None:
    s = suffix()
    answer = await post(http, {"events": [item(f"a-{s}"), item(f"b-{s}"), chat(f"room-{s}", 1)]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["PUBLISHED"] * 3
    assert [r["topic"] for r in results] == ["item-events", "item-events", "chat-events"]
    stored = await statuses_of(http, [r["eventId"] for r in results])
    assert set(stored.values()) <= {"PUBLISHED", "PROCESSED"}


async def test_none_published_is_422(http: httpx.AsyncClient) -> None:
    answer = await post(http, {"events": [item("x", price=-5), 42, {"eventType": "NOPE"}]})
    assert answer.status_code == 422, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["FAILED"] * 3


async def test_order_is_kept_within_an_aggregate(http: httpx.AsyncClient) -> None:
    s = suffix()
    rooms = [f"room-{s}-{n}" for n in range(4)]
    events = [chat(rooms[n % len(rooms)], n) for n in range(40)]
    answer = await post(http, {"events": events})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    for room in rooms:
        mine = [r for r, e in zip(results, events, strict=True) if e["aggregateId"] == room]
        assert len({r["partition"] for r in mine}) == 1, "one aggregate, one partition"
        offsets = [r["offset"] for r in mine]
        assert offsets == sorted(offsets)
        assert len(set(offsets)) == len(offsets)


async def test_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    answer = await post(http, {"events": [chat("room", n) for n in range(501)]})
    assert answer.status_code == 413, answer.text
    body = answer.json()
    assert set(body) == ERROR_FIELDS
    assert body["code"] == "PAYLOAD_TOO_LARGE"
    assert body["details"] == {"maxEvents": 500, "events": 501}


@pytest.mark.parametrize(
    "body",
    [[], {"events": {}}, {"event": []}, {"events": []}, {"events": [], "extra": 1}, "text"],
)
async def test_not_a_batch_is_400(http: httpx.AsyncClient, body: Any) -> None:
    answer = await post(http, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "INVALID_REQUEST"


async def test_needs_a_token(http: httpx.AsyncClient) -> None:
    answer = await http.post(PATH, json={"events": [item("x")]})
    assert answer.status_code == 401
