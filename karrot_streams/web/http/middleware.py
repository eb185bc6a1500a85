"""The one aiohttp middleware of ``/api/v1``: bearer tokens first, then every error as JSON.

Whatever goes wrong (no route, wrong method, a view's ApiError, a service's domain error, an
unexpected exception) the client gets the seed's ErrorResponse; an unexpected exception is logged
and answered 500 without its trace. Paths outside ``/api/v1`` (``/metrics``, Faust's own pages)
are left as they are.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from karrot_streams.peer_auth import FROM_PEER, PeerAuth
from karrot_streams.publishing.errors import PublishUnavailable
from karrot_streams.web.http.auth import TokenCheck, bearer_token, is_api, needs_token
from karrot_streams.web.http.errors import (
    ApiError,
    InternalError,
    MethodNotAllowed,
    Unauthorized,
    error_body,
    from_publish_failure,
    from_status,
)
from karrot_streams.web.http.responses import json_response

log = logging.getLogger(__name__)


def route_pattern(request: web.Request) -> str:
    """The pattern of the route matched (``/api/v1/events/{event_id}``), else the path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def error_response(error: ApiError, request: web.Request) -> web.Response:
    return json_response(
        error_body(error, request.path, datetime.now(UTC)),
        status=error.status,
        headers=error.headers,
    )


def api_middleware(tokens: TokenCheck, peers: PeerAuth) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        pattern = route_pattern(request)
        if not is_api(pattern):
            return await handler(request)
        # A worker of the group forwarding a query signs it instead of passing the client's
        # token on; anyone else's hop header is ignored (the request is routed as any other).
        peer = peers.request_is_from_peer(request)
        request[FROM_PEER] = peer
        if (
            needs_token(pattern)
            and not peer
            and not tokens.accepts(bearer_token(request.headers.get("Authorization")))
        ):
            denied = Unauthorized("A valid bearer token is required: Authorization: Bearer <token>")
            return error_response(denied, request)
        try:
            return await handler(request)
        except (ApiError, PublishUnavailable) as error:
            api_error = error if isinstance(error, ApiError) else from_publish_failure(error)
            return error_response(api_error, request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects pass through
            return error_response(await _from_http(exc, request), request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Unexpected error answering %s %s", request.method, request.path)
            return error_response(InternalError("Unexpected server error"), request)

    return middleware


async def allowed_methods(request: web.Request) -> set[str]:
    """The methods of the route that answers this path: the first that matches it, as routing
    picks. aiohttp's 405 lists every matching route's: ``/api/v1/events/batch`` also matches
    ``/api/v1/events/{event_id}``, whose GET is no operation of the batch path."""
    for resource in request.app.router.resources():
        _, allowed = await resource.resolve(request)
        if allowed:
            return set(allowed)
    return set()


async def _from_http(exc: web.HTTPException, request: web.Request) -> ApiError:
    if not isinstance(exc, web.HTTPMethodNotAllowed):
        return from_status(exc.status, exc.reason, request.path)
    allowed = sorted(await allowed_methods(request) or exc.allowed_methods)
    return MethodNotAllowed(
        f"Method {request.method} is not allowed here; allowed: {', '.join(allowed)}",
        details={"allowed": allowed},
        headers={"Allow": ", ".join(allowed)},
    )
