"""``POST /api/v1/events/batch``: many publish requests in one body, a result for each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from karrot_streams.web.batch_publishing import parse_batch, publish_batch
from karrot_streams.web.http.body import read_body
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView


class PublishBatchView(ApiView):
    async def post(self, request: web.Request) -> web.StreamResponse:
        settings = self.resources.settings
        body = await read_body(request, settings.max_body_bytes)
        items = parse_batch(
            body,
            maximum=settings.batch_publish_max,
            now=datetime.now(UTC),
            new_id=lambda: str(uuid.uuid4()),
        )
        publisher = await self.publisher(request)
        result = await publish_batch(publisher, items)
        return json_response(result.to_json(), status=result.status)
