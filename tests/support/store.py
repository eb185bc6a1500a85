"""Read ``event_store`` from tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection

import aiopg


async def statuses(dsn: str, event_ids: Collection[str]) -> dict[str, tuple[str, str | None]]:
    async with aiopg.connect(dsn) as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT event_id, status, failure_reason FROM event_store WHERE event_id = ANY(%s)",
            (list(event_ids),),
        )
        return {row[0]: (row[1], row[2]) for row in await cur.fetchall()}


async def wait_for_statuses(
    dsn: str, expected: dict[str, str], timeout_s: float = 120.0
) -> dict[str, tuple[str, str | None]]:
    """Poll until every id has its expected status; return what was found either way."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, tuple[str, str | None]] = {}
    while time.monotonic() < deadline:
        found = await statuses(dsn, expected)
        if all(found.get(i, ("",))[0] == status for i, status in expected.items()):
            return found
        await asyncio.sleep(0.5)
    return found
