"""Views the workers of a group ask each other, outside ``/api/v1`` and its document.

``GET /internal/items/{item_id}``: the items stage's value of one item, from the worker holding
its partition, for a category query on another worker that waits for a sale's consistency token
(web/consistency.py). Only a peer's signed request is answered; anyone else gets a 404.
"""

from __future__ import annotations

from aiohttp import web

from karrot_streams.web.http.responses import json_response
from karrot_streams.web.owner_forwarding import is_local
from karrot_streams.web.view import ApiView


class ItemStateView(ApiView):
    async def get(self, request: web.Request, item_id: str) -> web.StreamResponse:
        if not self.karrot.peer_auth.request_is_from_peer(request):
            raise web.HTTPNotFound(text="Not found")
        tables = self.aggregates
        if not is_local(self.karrot, tables.items, item_id):
            raise web.HTTPServiceUnavailable(text="This worker does not hold the item's partition")
        return json_response(tables.items[item_id] or {})
