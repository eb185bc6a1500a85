"""Read ``event_store`` progress for one benchmark run's events (tagged aggregate ids).

``created_at`` is the database's clock at the write of each row (one transaction per batch), so
it times the pipeline's last durable effect without any help from the process under test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiopg
import psycopg2

# created_at is a TIMESTAMP in the session's zone: convert back to an instant before extracting.
_EPOCH = "extract(epoch from (created_at AT TIME ZONE current_setting('TimeZone')))"


@dataclass(frozen=True)
class RowTimes:
    count: int
    first: float
    last: float


#: Connection losses a probe survives in a row: the shared database's fault tests (other
#: people's) terminate connections now and then; a probe only reads, so it reconnects.
RECONNECTS = 5


class StoreProbe:
    def __init__(self, conn: Any, dsn: str = "") -> None:
        self._conn = conn
        self._dsn = dsn

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, dsn: str) -> AsyncIterator[StoreProbe]:
        probe = cls(await aiopg.connect(dsn), dsn)
        try:
            yield probe
        finally:
            probe._conn.close()

    async def _one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        rows = await self._rows(sql, params)
        row = rows[0] if rows else None
        assert row is not None  # noqa: S101  aggregate queries always answer one row
        return tuple(row)

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        for attempt in range(RECONNECTS + 1):
            try:
                async with self._conn.cursor() as cur:
                    await cur.execute(sql, params)
                    return list(await cur.fetchall())
            except (psycopg2.InterfaceError, psycopg2.OperationalError):
                if attempt == RECONNECTS or not self._dsn:
                    raise
                self._conn.close()
                await asyncio.sleep(0.5 * (attempt + 1))
                with contextlib.suppress(psycopg2.OperationalError):
                    self._conn = await aiopg.connect(self._dsn)
        raise AssertionError("unreachable")

    async def mark(self) -> datetime:
        """The database's ``localtimestamp``: rows of this run have ``created_at`` after it."""
        (now,) = await self._one("SELECT localtimestamp")
        assert isinstance(now, datetime)  # noqa: S101
        return now

    async def count(self, tag: str, since: datetime) -> int:
        (found,) = await self._one(
            "SELECT count(*) FROM event_store WHERE created_at >= %s AND aggregate_id LIKE %s",
            (since, tag + "%"),
        )
        return int(found)

    async def times(self, tag: str, since: datetime) -> RowTimes | None:
        found, first, last = await self._one(
            f"SELECT count(*), min({_EPOCH}), max({_EPOCH}) FROM event_store"
            " WHERE created_at >= %s AND aggregate_id LIKE %s",
            (since, tag + "%"),
        )
        if not found:
            return None
        return RowTimes(int(found), float(first), float(last))

    async def created(self, event_ids: Collection[str]) -> dict[str, float]:
        rows = await self._rows(
            f"SELECT event_id, {_EPOCH} FROM event_store WHERE event_id = ANY(%s)",
            (list(event_ids),),
        )
        return {str(i): float(t) for i, t in rows}
