"""``POST /api/v1/events/batch``: many publish requests in one body, a result for each."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from karrot_streams.events.model import Event
from karrot_streams.publishing.batch import publish_batch
from karrot_streams.publishing.errors import PublishUnavailable
from karrot_streams.publishing.events import Published
from karrot_streams.store.event_store import Status
from karrot_streams.web.consistency import published_token
from karrot_streams.web.http import models
from karrot_streams.web.http.body import read_body
from karrot_streams.web.http.errors import ApiError, from_publish_failure
from karrot_streams.web.http.operations import TRACE_HEADERS, Answer, Operation, declare
from karrot_streams.web.http.requests import parse_batch
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView

FAILED = "FAILED"


class PublishBatchView(ApiView):
    operations = declare(
        post=Operation(
            "Publish many events; a result per event in request order",
            {
                200: Answer("Every event published", models.BatchResult),
                207: Answer("Some published, some failed", models.BatchResult),
                422: Answer("None published", models.BatchResult),
            },
            errors=(400, 401, 413, 503),
            body=models.BatchRequest,
            headers=TRACE_HEADERS,
        )
    )

    async def post(self, request: web.Request) -> web.StreamResponse:
        settings = self.resources.settings
        body = await read_body(request, settings.max_body_bytes)
        items = parse_batch(
            body,
            maximum=settings.batch_publish_max,
            now=datetime.now(UTC),
            new_id=lambda: str(uuid.uuid4()),
            max_message_length=settings.max_message_length,
        )
        publisher = await self.publisher(request)
        outcomes = await publish_batch(publisher, items)
        names = self.resources.topics.names
        tokens = {
            index: str(published_token(outcome, event, names))
            for index, (outcome, event) in enumerate(zip(outcomes, items, strict=True))
            if isinstance(outcome, Published) and isinstance(event, Event)
        }
        result = batch_result(outcomes, tokens)
        return json_response(result.to_json(), status=result.status)


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: list[dict[str, Any]]

    @property
    def published(self) -> int:
        return sum(1 for result in self.results if result["status"] != FAILED)

    @property
    def status(self) -> int:
        """200 when every event was published, 422 when none was, else 207."""
        if self.published == len(self.results):
            return 200
        return 422 if self.published == 0 else 207

    def to_json(self) -> dict[str, Any]:
        return {"results": self.results}


def batch_result(
    outcomes: Sequence[Published | PublishUnavailable | ApiError],
    tokens: Mapping[int, str] | None = None,
) -> BatchResult:
    """The result of each item; a published one with its consistency token (``tokens``)."""
    results = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Published):
            published = published_json(index, outcome)
            if tokens is not None and index in tokens:
                published["consistencyToken"] = tokens[index]
            results.append(published)
        elif isinstance(outcome, PublishUnavailable):
            results.append(failed_json(index, from_publish_failure(outcome)))
        else:
            results.append(failed_json(index, outcome))
    return BatchResult(results)


def published_json(index: int, published: Published) -> dict[str, Any]:
    return {
        "index": index,
        "eventId": published.event_id,
        "status": Status.PUBLISHED.value,
        "topic": published.topic,
        "partition": published.partition,
        "offset": published.offset,
    }


def failed_json(index: int, error: ApiError) -> dict[str, Any]:
    return {
        "index": index,
        "status": FAILED,
        "code": error.code,
        "message": error.message,
        "details": error.details,
    }
