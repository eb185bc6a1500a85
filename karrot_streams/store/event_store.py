"""The ``event_store`` table through aiopg: batched, idempotent, status only moving forward."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiopg
import orjson

from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.model import Event
from karrot_streams.store.errors import DATABASE_ERROR, UNAVAILABLE, RowsRefused, StoreUnavailable


class Status(StrEnum):
    CREATED = "CREATED"
    PUBLISHED = "PUBLISHED"
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"


#: Which status may replace which: forward only. FAILED -> PROCESSED is the one way back,
#: taken when a dead letter is fixed and redriven.
_RANK = {Status.CREATED: 0, Status.PUBLISHED: 1, Status.FAILED: 2, Status.PROCESSED: 3}


@dataclass(frozen=True, slots=True)
class StoreRow:
    event_id: str
    aggregate_id: str
    event_type: str
    event_data: str
    event_time: datetime
    status: Status
    failure_reason: str | None = None
    published_at: datetime | None = None

    @classmethod
    def of_event(cls, event: Event, status: Status, failure_reason: str | None = None) -> StoreRow:
        """The row of a decoded event: the pipeline's and the publish path's."""
        return cls.of(
            event_id=event.event_id,
            aggregate_id=event.aggregate_id,
            event_type=event.event_type.value,
            data=event.to_json(),
            event_time=event.occurred_at,
            status=status,
            failure_reason=failure_reason,
        )

    @classmethod
    def of(
        cls,
        *,
        event_id: str,
        aggregate_id: str,
        event_type: str,
        data: dict[str, Any],
        event_time: datetime,
        status: Status,
        failure_reason: str | None = None,
        published_at: datetime | None = None,
    ) -> StoreRow:
        return cls(
            event_id=event_id,
            aggregate_id=aggregate_id,
            event_type=event_type,
            event_data=_json_text(data),
            event_time=event_time,
            status=status,
            failure_reason=failure_reason,
            published_at=published_at,
        )


#: Datetimes through ``default=str``, as the stdlib's ``json.dumps(default=str)`` wrote them.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def _json_text(data: dict[str, Any]) -> str:
    """``event_data``: compact JSON, non-ASCII as is. orjson, a fifth of the stdlib's time per
    row; the stdlib for what orjson refuses (an integer beyond 64 bits in a partial record)."""
    try:
        return orjson.dumps(data, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    aggregate_id: str
    event_type: str
    status: Status
    event_time: datetime
    published_at: datetime | None
    failure_reason: str | None
    event_data: str


def _naive_utc(moment: datetime | None) -> datetime | None:
    # The seed's columns are TIMESTAMP without time zone: they hold UTC.
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def collapse(rows: Iterable[StoreRow]) -> list[StoreRow]:
    """One row per event id (a statement may not touch a row twice): the most advanced wins."""
    best: dict[str, StoreRow] = {}
    for row in rows:
        seen = best.get(row.event_id)
        if seen is None or _RANK[row.status] > _RANK[seen.status]:
            best[row.event_id] = row
    return list(best.values())


def _without_nul(row: StoreRow) -> StoreRow:
    texts = (row.aggregate_id, row.event_type, row.event_data, row.failure_reason or "")
    if not any("\x00" in text for text in texts):
        return row
    return replace(
        row,
        aggregate_id=row.aggregate_id.replace("\x00", "\ufffd"),
        event_type=row.event_type.replace("\x00", "\ufffd"),
        event_data=row.event_data.replace("\x00", "\ufffd"),
        failure_reason=row.failure_reason and row.failure_reason.replace("\x00", "\ufffd"),
    )


_UPSERT = """
INSERT INTO event_store AS s
    (event_id, aggregate_id, event_type, event_data, event_time, status, failure_reason,
     published_at)
SELECT * FROM unnest(
    %s::varchar[], %s::varchar[], %s::varchar[], %s::text[], %s::timestamp[], %s::varchar[],
    %s::text[], %s::timestamp[])
ON CONFLICT (event_id) DO UPDATE SET
    status = EXCLUDED.status,
    failure_reason = EXCLUDED.failure_reason,
    published_at = COALESCE(s.published_at, EXCLUDED.published_at),
    version = s.version + 1
WHERE (CASE s.status WHEN 'CREATED' THEN 0 WHEN 'PUBLISHED' THEN 1 WHEN 'FAILED' THEN 2 ELSE 3 END)
    < (CASE EXCLUDED.status WHEN 'CREATED' THEN 0 WHEN 'PUBLISHED' THEN 1 WHEN 'FAILED' THEN 2
       ELSE 3 END)
"""

_MARK_PUBLISHED = """
UPDATE event_store SET
    status = CASE WHEN status = 'CREATED' THEN 'PUBLISHED' ELSE status END,
    published_at = COALESCE(published_at, %s),
    version = version + 1
WHERE event_id = %s AND (status = 'CREATED' OR published_at IS NULL)
"""

_SELECT = """
SELECT event_id, aggregate_id, event_type, status, event_time, published_at, failure_reason,
       event_data
FROM event_store WHERE event_id = %s
"""


class EventStore:
    """A pool of connections to PostgreSQL.

    Every method raises StoreUnavailable (a TransientFailure) when the database is down, and
    RowsRefused when it answers with an error.
    """

    def __init__(self, dsn: str, *, maxsize: int = 4, timeout_s: float = 10.0) -> None:
        self._dsn = dsn
        self._maxsize = maxsize
        self._timeout_s = timeout_s
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await aiopg.create_pool(
                        self._dsn, minsize=0, maxsize=self._maxsize, timeout=self._timeout_s
                    )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    async def _execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(sql, params)
                if cur.description is None:
                    return []
                return list(await cur.fetchall())
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}".strip()) from exc
        except DATABASE_ERROR as exc:
            raise RowsRefused(str(exc)) from exc

    async def upsert(self, rows: Iterable[StoreRow]) -> None:
        """Write many rows in one round trip; replays and stale statuses change nothing."""
        # PostgreSQL text cannot hold NUL (psycopg2 raises ValueError, not a database error):
        # a row whose id has one cannot exist; elsewhere it becomes U+FFFD.
        # Sorted by id: batches of one agent are written side by side, and two statements
        # that take their rows' locks in one order cannot deadlock on a shared id.
        unique = sorted(
            (_without_nul(r) for r in collapse(rows) if "\x00" not in r.event_id),
            key=lambda r: r.event_id,
        )
        if not unique:
            return
        await self._execute(
            _UPSERT,
            (
                [r.event_id for r in unique],
                [r.aggregate_id for r in unique],
                [r.event_type for r in unique],
                [r.event_data for r in unique],
                [_naive_utc(r.event_time) for r in unique],
                [r.status.value for r in unique],
                [r.failure_reason for r in unique],
                [_naive_utc(r.published_at) for r in unique],
            ),
        )

    async def mark_published(self, event_id: str, published_at: datetime) -> None:
        """CREATED -> PUBLISHED, and record ``published_at`` even if the pipeline got there first.

        ``upsert`` leaves a row alone once it is further on (PROCESSED by a fast consumer); the
        publish time is still worth keeping on it.
        """
        await self._execute(_MARK_PUBLISHED, (_naive_utc(published_at), event_id))

    async def get(self, event_id: str) -> StoredEvent | None:
        if "\x00" in event_id:
            return None  # no stored id can contain NUL, and PostgreSQL refuses it in a query
        rows = await self._execute(_SELECT, (event_id,))
        if not rows:
            return None
        row = rows[0]
        return StoredEvent(
            event_id=row[0],
            aggregate_id=row[1],
            event_type=row[2],
            status=Status(row[3]),
            event_time=_aware(row[4]) or row[4],
            published_at=_aware(row[5]),
            failure_reason=row[6],
            event_data=row[7],
        )

    async def counts_by_status(self) -> dict[str, int]:
        rows = await self._execute("SELECT status, count(*) FROM event_store GROUP BY status", ())
        return {str(status): int(count) for status, count in rows}

    async def ping(self) -> bool:
        try:
            await self._execute("SELECT 1", ())
        except TransientFailure:
            return False
        return True
