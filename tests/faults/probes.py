"""Small reads of a worker's state through its open monitoring view."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

HEALTH = "/api/v1/monitoring/health"


async def health(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.get(url + HEALTH)
    return answer.status_code, answer.json()


async def assigned_partitions(url: str) -> int | None:
    """Partitions the worker holds (inputs and internal topics), or None if it does not answer."""
    try:
        _, body = await health(url)
    except (httpx.HTTPError, ValueError):
        return None
    value = body["components"]["commits"]["details"].get("assignedPartitions")
    return int(value) if value is not None else None


async def wait_for(
    probe: Callable[[], Any], accept: Callable[[Any], bool], timeout_s: float, every_s: float = 1.0
) -> Any:
    """Poll ``probe`` until ``accept`` says yes; return the last value either way."""
    deadline = time.monotonic() + timeout_s
    value = await probe()
    while not accept(value) and time.monotonic() < deadline:
        await asyncio.sleep(every_s)
        value = await probe()
    return value
