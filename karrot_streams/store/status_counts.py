"""Event-store counts by status for the open stats view, from a cache, never per request.

``/api/v1/monitoring/stats`` is open and polled (the console asks every 3 s, per tab). A
``count(*) ... GROUP BY status`` per call on the pipeline's own pool would let anyone load the
database and take the connections the pipeline needs. Instead a timer refreshes these counts on
a connection of their own, with a statement timeout; the view serves the last sample and its age.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiopg

from karrot_streams.store.errors import DATABASE_ERROR

log = logging.getLogger(__name__)

COUNTS_SQL = "SELECT status, count(*) FROM event_store GROUP BY status"


class StatusCounts:
    """The latest counts, the time they were taken, and why the last refresh failed, if it did."""

    def __init__(self, dsn: str, *, timeout_s: float = 5.0) -> None:
        self._dsn = dsn
        self._timeout_s = timeout_s
        self._conn: Any = None
        self._refreshing: asyncio.Task[None] | None = None
        self.counts: dict[str, int] | None = None
        self.sampled_at: float | None = None
        self.error: str | None = None
        self.refreshes = 0

    async def refresh(self) -> None:
        """Take a new sample (one at a time: concurrent callers share the one under way)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        await asyncio.shield(self._refreshing)

    async def first(self) -> None:
        """A sample if none was ever taken (the view before the timer's first tick)."""
        if self.sampled_at is None and self.error is None:
            await self.refresh()

    async def _refresh(self) -> None:
        self.refreshes += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                conn = await self._connection()
                async with conn.cursor() as cur:
                    await cur.execute(COUNTS_SQL)
                    rows = await cur.fetchall()
        except (DATABASE_ERROR, OSError, TimeoutError) as exc:
            # DATABASE_ERROR also covers a database the migrations have not reached (no table).
            await self.close()  # a timed-out or broken connection is not reused
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            log.debug("Event-store counts unavailable: %s", self.error)
            return
        self.counts = {str(status): int(count) for status, count in rows}
        self.sampled_at = time.time()
        self.error = None

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            timeout_ms = int(self._timeout_s * 1000)
            self._conn = await aiopg.connect(
                self._dsn,
                timeout=self._timeout_s,
                # The database ends a count that runs long, not only this client.
                options=f"-c statement_timeout={timeout_ms} -c application_name=karrot-stats",
            )
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()
