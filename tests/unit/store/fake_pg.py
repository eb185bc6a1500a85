"""A scripted stand-in for aiopg: connections, a pool and cursors that record each statement.

``respond(sql, params)`` decides what a statement does: return rows, or raise (a database
outage is an OperationalError, a bad row a DataError), as psycopg2 would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

Responder = Callable[[str, Sequence[Any] | None], list[tuple[Any, ...]] | None]


def no_rows(sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]] | None:
    return None


class FakeCursor:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self._rows: list[tuple[Any, ...]] | None = None

    @property
    def description(self) -> object | None:
        return None if self._rows is None else ("columns",)

    async def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self._db.statements.append((sql, params))
        self._rows = self._db.respond(sql, params)

    async def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows or [])

    async def __aenter__(self) -> FakeCursor:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class FakeConnection:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self.closed = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self._db)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeConnection:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __await__(self) -> Any:
        # aiopg.connect(...) is both awaited and used as `async with`: so is this.
        async def itself() -> FakeConnection:
            return self

        return itself().__await__()


class FakePool:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self.closed = False

    def acquire(self) -> FakeConnection:
        return FakeConnection(self._db)

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


class FakeDatabase:
    """Every statement it was sent, and the connections and pools it handed out."""

    def __init__(self, respond: Responder = no_rows) -> None:
        self.respond = respond
        self.statements: list[tuple[str, Sequence[Any] | None]] = []
        self.connects: list[dict[str, Any]] = []
        self.pools: list[FakePool] = []

    def connect(self, dsn: str, **kwargs: Any) -> FakeConnection:
        self.connects.append({"dsn": dsn, **kwargs})
        return FakeConnection(self)

    async def create_pool(self, dsn: str, **kwargs: Any) -> FakePool:
        self.connects.append({"dsn": dsn, **kwargs})
        pool = FakePool(self)
        self.pools.append(pool)
        return pool

    def sql(self) -> list[str]:
        return [" ".join(sql.split()) for sql, _ in self.statements]
