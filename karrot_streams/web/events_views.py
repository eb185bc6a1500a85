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
from karrot_streams.web.http.body import read_body
from karrot_streams.web.http.errors import NotFound, ServiceUnavailable
from karrot_streams.web.http.requests import parse_publish
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView

STORE_TIMEOUT_S = 10.0


class PublishEventView(ApiView):
    async def post(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request, self.resources.settings.max_body_bytes)
        event = parse_publish(body, event_id=str(uuid.uuid4()), now=datetime.now(UTC))
        publisher = await self.publisher(request)
        published = await publisher.publish(event)
        return json_response(
            published.to_json(),
            status=201,
            headers={"Location": f"/api/v1/events/{published.event_id}"},
        )


class EventView(ApiView):
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
