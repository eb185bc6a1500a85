"""The base of every API view: typed access to the worker's pieces, errors in the API's shape."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from aiohttp import web
from faust.web import Request, Response, View
from faust.web.exceptions import WebError

from karrot_streams.monitoring.tracing import TRACEPARENT, TRACESTATE, http_trace_headers
from karrot_streams.publishing.events import EventPublisher, HeaderList
from karrot_streams.web.http.errors import ServiceUnavailable, from_status
from karrot_streams.web.http.operations import Operation

if TYPE_CHECKING:
    from karrot_streams.resources import Resources
    from karrot_streams.tables.declarations import Tables
    from karrot_streams.worker_app import KarrotApp

#: How long a request waits for start-up (migrations, schema registration) before a 503.
READY_TIMEOUT_S = 10.0


class ApiView(View):
    #: What each method does, for the OpenAPI document (web/openapi.py): one per handler.
    operations: ClassVar[Mapping[str, Operation]] = {}

    @property
    def karrot(self) -> KarrotApp:
        return cast("KarrotApp", self.app)

    @property
    def resources(self) -> Resources:
        return self.karrot.resources

    @property
    def aggregates(self) -> Tables:
        tables = self.karrot.aggregates
        if tables is None:
            raise ServiceUnavailable(
                "This worker runs the pipeline stage only (KARROT_ROLE=pipeline): ask a worker"
                " with KARROT_ROLE=aggregates or all for table queries"
            )
        return tables

    async def ready(self) -> Resources:
        """The resources once migrations ran and schemas are registered; 503 while they are not."""
        resources = self.resources
        try:
            await asyncio.wait_for(resources.ready(), READY_TIMEOUT_S)
        except TimeoutError:
            raise ServiceUnavailable(
                "The worker is still starting (database migrations, schema registration)",
                details=_startup_details(resources),
            ) from None
        return resources

    async def publisher(self, request: web.Request) -> EventPublisher:
        """What publishes the request's events: to the input topics, with its trace context."""
        resources = await self.ready()
        producer = self.karrot.producer

        transactions = self.karrot.transactions

        async def send(topic: str, key: bytes, value: bytes, headers: HeaderList) -> Any:
            # Answered once committed: the offset in the response is one a read_committed
            # reader gets.
            return await transactions.produce(
                lambda: producer.send(topic, key, value, None, None, headers)
            )

        return EventPublisher(
            store=resources.store,
            send=send,
            writers=resources.writers,
            headers=request_trace_headers(request),
            topics=resources.topics.names,
        )

    async def on_request_error(self, request: Request, exc: WebError) -> Response:
        # Faust's own WebError (raised by its helpers): re-raised as ours, for the middleware.
        raise from_status(int(exc.code), str(exc.detail), cast(web.Request, request).path)


def _startup_details(resources: Resources) -> dict[str, Any]:
    return {
        name: {"up": state.up, "detail": state.detail}
        for name, state in resources.health.components.items()
    }


def request_trace_headers(request: web.Request) -> HeaderList:
    """The request's W3C ``traceparent``/``tracestate`` for its records, or a new trace."""
    return http_trace_headers(request.headers.get(TRACEPARENT), request.headers.get(TRACESTATE))
