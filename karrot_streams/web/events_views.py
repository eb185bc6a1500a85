"""``POST /api/v1/events`` (publish) and ``GET /api/v1/events/{event_id}`` (its status)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.timestamps import iso_utc
from karrot_streams.store.event_store import StoredEvent
from karrot_streams.web.consistency import published_token
from karrot_streams.web.http import models
from karrot_streams.web.http.body import read_body
from karrot_streams.web.http.errors import NotFound, ServiceUnavailable
from karrot_streams.web.http.operations import TRACE_HEADERS, Answer, Operation, declare
from karrot_streams.web.http.requests import parse_publish
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView

STORE_TIMEOUT_S = 10.0


class PublishEventView(ApiView):
    operations = declare(
        post=Operation(
            "Publish an event: validated, stored CREATED, produced, then PUBLISHED",
            {201: Answer("Published", models.Published)},
            errors=(400, 401, 413, 503),
            body=models.PublishRequest,
            headers=TRACE_HEADERS,
        )
    )

    async def post(self, request: web.Request) -> web.StreamResponse:
        settings = self.resources.settings
        body = await read_body(request, settings.max_body_bytes)
        event = parse_publish(
            body,
            event_id=str(uuid.uuid4()),
            now=datetime.now(UTC),
            max_message_length=settings.max_message_length,
        )
        publisher = await self.publisher(request)
        published = await publisher.publish(event)
        token = published_token(published, event, self.resources.topics.names)
        return json_response(
            {**published.to_json(), "consistencyToken": str(token)},
            status=201,
            headers={"Location": f"/api/v1/events/{published.event_id}"},
        )


class EventView(ApiView):
    operations = declare(
        get=Operation(
            "An event's status: CREATED, PUBLISHED, PROCESSED or FAILED",
            {200: Answer("The event", models.StoredEvent)},
            errors=(400, 401, 404, 503),
            path={"eventId": {"description": "The event's id"}},
            operation_id="getEvent",
        )
    )

    async def get(self, request: web.Request, event_id: str) -> web.StreamResponse:
        resources = await self.ready()
        try:
            stored = await asyncio.wait_for(resources.store.get(event_id), STORE_TIMEOUT_S)
        except (TransientFailure, TimeoutError) as exc:
            raise ServiceUnavailable(
                "The event store is unavailable", details={"reason": str(exc)[:300]}
            ) from exc
        if stored is None:
            raise NotFound(
                f"No event with id {event_id[:100]!r}", details={"eventId": event_id[:255]}
            )
        return json_response(event_json(stored))


def event_json(stored: StoredEvent) -> dict[str, Any]:
    return {
        "eventId": stored.event_id,
        "eventType": stored.event_type,
        "aggregateId": stored.aggregate_id,
        "status": stored.status.value,
        "eventTime": iso_utc(stored.event_time),
        "publishedAt": iso_utc(stored.published_at) if stored.published_at else None,
        "failureReason": stored.failure_reason,
    }
