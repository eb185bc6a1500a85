"""JSON responses (UTF-8, Korean left readable) and the one timestamp format of the API."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision and a ``Z``: ``2024-05-01T09:30:00.000Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the event store's columns hold UTC
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_epoch(epoch_s: float) -> str:
    return iso_utc(datetime.fromtimestamp(epoch_s, UTC))


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
