"""The six disagreements schemathesis found (issue 20), each pinned: the document, the request
parsing and the pipeline's validation now say the same thing.

1. a chat ``senderId`` over the document's ``maxLength`` was published (201) although the
   stream refuses it: ``test_an_id_over_its_max_length_is_refused_by_the_api_and_the_stream``;
2. and 3. an ``amount`` of ``5195201559752.0`` (an integer to JSON Schema) was refused by
   ``POST /events`` and by ``POST /events/batch``:
   ``test_an_integral_float_amount_is_an_integer_for_publish`` and ``..._for_a_batch``;
4. ``GET /monitoring/dlq?limit=`` (empty) answered 200 although ``limit`` is an integer:
   ``test_an_empty_limit_is_refused``;
5. ``GET /dlq/{topic}/messages?since=<any string>`` was refused while the document declared a
   plain string: ``test_since_is_documented_as_a_date_time``;
6. ``OPTIONS /events/batch`` answered ``Allow: GET, HEAD, POST``:
   ``test_options_on_the_batch_path_allows_only_its_own_methods``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from karrot_streams.events.failures import InvalidEvent
from karrot_streams.events.types import NAMESPACE
from karrot_streams.events.validation import event_from_avro
from karrot_streams.peer_auth import PeerAuth
from karrot_streams.settings import Settings
from karrot_streams.web.http.auth import TokenCheck
from karrot_streams.web.http.errors import ApiError, BadRequest
from karrot_streams.web.http.middleware import api_middleware
from karrot_streams.web.http.models import RecentQuery
from karrot_streams.web.http.requests import parse_batch, parse_publish, parse_query
from karrot_streams.web.openapi import openapi_document
from karrot_streams.web.route_table import ROUTES

NOW = datetime(2026, 12, 1, tzinfo=UTC)
EVENT_ID = str(uuid.uuid4())


def _chat(sender: str) -> dict[str, Any]:
    return {
        "eventType": "CHAT_MESSAGE_SENT",
        "aggregateId": "room-1",
        "payload": {"chatRoomId": "room-1", "senderId": sender, "message": "hi"},
    }


def _payment(amount: Any) -> dict[str, Any]:
    return {
        "eventType": "PAYMENT_COMPLETED",
        "aggregateId": "pay-1",
        "payload": {
            "paymentId": "pay-1",
            "buyerId": "b",
            "sellerId": "s",
            "itemId": "i",
            "amount": amount,
        },
    }


def test_an_id_over_its_max_length_is_refused_by_the_api_and_the_stream() -> None:
    document = openapi_document(ROUTES, Settings())
    limit = document["components"]["schemas"]["ChatMessage"]["properties"]["senderId"]["maxLength"]
    with pytest.raises(ApiError) as caught:
        parse_publish(json.dumps(_chat("s" * (limit + 1))).encode(), event_id=EVENT_ID, now=NOW)
    assert caught.value.status == 400
    assert caught.value.details == {"field": "payload.senderId"}
    parse_publish(json.dumps(_chat("s" * limit)).encode(), event_id=EVENT_ID, now=NOW)
    envelope = {
        "eventId": EVENT_ID,
        "eventType": "CHAT_MESSAGE_SENT",
        "aggregateId": "room-1",
        "occurredAt": NOW,
        "payload": (
            f"{NAMESPACE}.ChatMessage",
            {"chatRoomId": "room-1", "senderId": "s" * (limit + 1), "message": "hi"},
        ),
    }
    with pytest.raises(InvalidEvent) as refused:
        event_from_avro("chat-events", f"{NAMESPACE}.ChatEvent", envelope)
    assert refused.value.field == "senderId"


def test_an_integral_float_amount_is_an_integer_for_publish() -> None:
    raw = json.dumps(_payment(5195201559752.0)).encode()
    event = parse_publish(raw, event_id=EVENT_ID, now=NOW)
    assert event.payload["amount"] == 5195201559752
    assert type(event.payload["amount"]) is int
    with pytest.raises(ApiError):
        parse_publish(json.dumps(_payment(1.5)).encode(), event_id=EVENT_ID, now=NOW)


def test_an_integral_float_amount_is_an_integer_for_a_batch() -> None:
    raw = json.dumps({"events": [_payment(5195201559752.0), _payment("5")]}).encode()
    first, second = parse_batch(raw, maximum=10, now=NOW, new_id=lambda: EVENT_ID)
    assert not isinstance(first, ApiError)
    assert first.payload["amount"] == 5195201559752
    assert isinstance(second, ApiError)


def test_an_empty_limit_is_refused() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_query(RecentQuery, {"limit": ""})
    assert caught.value.details == {"field": "limit"}
    document = openapi_document(ROUTES, Settings())
    (limit,) = document["paths"]["/api/v1/monitoring/dlq"]["get"]["parameters"]
    assert limit["schema"]["type"] == "integer"


def test_since_is_documented_as_a_date_time() -> None:
    document = openapi_document(ROUTES, Settings())
    parameters = document["paths"]["/api/v1/dlq/{topic}/messages"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in parameters}
    assert by_name["since"] == {"type": "string", "format": "date-time"}
    assert by_name["until"] == {"type": "string", "format": "date-time"}


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    app = web.Application(middlewares=[api_middleware(TokenCheck(["good"]), PeerAuth(b"k" * 32))])
    app.router.add_post("/api/v1/events", handler)
    app.router.add_post("/api/v1/events/batch", handler)
    app.router.add_get("/api/v1/events/{event_id}", handler)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_options_on_the_batch_path_allows_only_its_own_methods(
    client: TestClient[web.Request, web.Application],
) -> None:
    answer = await client.options("/api/v1/events/batch", headers={"Authorization": "Bearer good"})
    assert answer.status == 405
    assert answer.headers["Allow"] == "POST"
    assert (await answer.json())["details"] == {"allowed": ["POST"]}
    answer = await client.delete("/api/v1/events/x", headers={"Authorization": "Bearer good"})
    assert answer.status == 405
    assert "GET" in answer.headers["Allow"]


async def test_a_since_before_1970_reads_from_the_beginning() -> None:
    """Found by the `--checks all` run: ``since=0001-01-01T00:00:00Z`` was a 500 (Kafka takes
    no negative time)."""
    from aiokafka import TopicPartition  # noqa: PLC0415

    from karrot_streams.dlq.reader import since_offsets  # noqa: PLC0415

    asked: dict[TopicPartition, int] = {}

    class Consumer:
        async def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[Any, Any]:
            asked.update(times)
            return dict.fromkeys(times)

    tp = TopicPartition("dlq.item-events", 0)
    await since_offsets(Consumer(), [tp], datetime(1, 1, 1, tzinfo=UTC))
    assert asked == {tp: 0}
