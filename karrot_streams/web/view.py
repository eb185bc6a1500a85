"""The base of every API view: typed access to the worker's pieces, errors in the API's shape."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web
from faust.web import View

from karrot_streams.web.errors import ServiceUnavailable, from_status

if TYPE_CHECKING:
    from karrot_streams.app import KarrotApp
    from karrot_streams.resources import Resources
    from karrot_streams.tables.declarations import Tables

#: How long a request waits for start-up (migrations, schema registration) before a 503.
READY_TIMEOUT_S = 10.0


class ApiView(View):  # type: ignore[misc]  # faust ships no type information
    @property
    def karrot(self) -> KarrotApp:
        app: KarrotApp = self.app
        return app

    @property
    def resources(self) -> Resources:
        return self.karrot.resources

    @property
    def aggregates(self) -> Tables:
        return self.karrot.aggregates

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

    async def on_request_error(self, request: web.Request, exc: Any) -> web.StreamResponse:
        # Faust's own WebError (raised by its helpers): re-raised as ours, for the middleware.
        raise from_status(int(exc.code), str(exc.detail), request.path)


def _startup_details(resources: Resources) -> dict[str, Any]:
    return {
        name: {"up": state.up, "detail": state.detail}
        for name, state in resources.health.components.items()
    }
