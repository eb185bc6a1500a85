"""The operator console: ``/console`` and its few static files, shipped as package data.

The page holds no data and no secret: it asks for a bearer token, keeps it in the tab's
``sessionStorage`` and calls the JSON API with it, so the API's own token check is what
protects the data. The files are read once and served with a strict Content-Security-Policy
(scripts and styles from this origin only, no inline code, no frames).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from karrot_streams.web.http.operations import HTML, TEXT, Answer, Operation, declare
from karrot_streams.web.view import ApiView

PACKAGE = "karrot_streams.web"
FOLDER = "console"
PAGE = "index.html"
#: Every file the console serves, with its content type; nothing else is reachable.
ASSETS = {
    PAGE: "text/html",
    "console.css": "text/css",
    "console.js": "text/javascript",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A new deployment's page and script always go together.
    "Cache-Control": "no-cache",
}


@cache
def asset(name: str) -> bytes:
    return resources.files(PACKAGE).joinpath(FOLDER, name).read_bytes()


def asset_response(name: str) -> web.Response:
    content_type = ASSETS[name]  # KeyError before any file is read
    return web.Response(
        body=asset(name),
        content_type=content_type,
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


class ConsoleView(ApiView):
    """``GET /console``: the page."""

    operations = declare(
        get=Operation(
            "The operator console's page (open; it asks for a token itself)",
            {200: Answer("HTML", HTML)},
            open=True,
        )
    )

    async def get(self, request: web.Request) -> web.StreamResponse:
        return asset_response(PAGE)


class ConsoleAssetView(ApiView):
    """``GET /console/{name}``: the page's stylesheet and script."""

    operations = declare(
        get=Operation(
            "The console's stylesheet and script",
            {
                200: Answer(
                    "The asset",
                    {
                        "text/html": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                        "text/javascript": {"schema": {"type": "string"}},
                    },
                ),
                404: Answer("No such asset", TEXT),
            },
            path={
                "name": {
                    "description": "An asset of the console",
                    "schema": {"examples": sorted(ASSETS)},
                }
            },
            open=True,
        )
    )

    async def get(self, request: web.Request, name: str) -> web.StreamResponse:
        if name not in ASSETS:
            raise web.HTTPNotFound(text="Not found")
        return asset_response(name)
