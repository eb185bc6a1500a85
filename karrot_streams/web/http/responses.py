"""JSON responses: UTF-8, Korean left readable (timestamps: ``events.timestamps``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_response(
    value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=dumps(value),
        status=status,
        content_type=JSON_TYPE,
        charset="utf-8",
        headers=dict(headers) if headers else None,
    )
