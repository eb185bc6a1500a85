"""Reading windowed tables for the hourly and daily views, and reading a bounded request body."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.http_exceptions import HttpProcessingError
from faust.windows import TumblingWindow

from karrot_streams.tables.declarations import HOUR
from karrot_streams.tables.windows import counted, recent_windows, span
from karrot_streams.web.http.body import read_body
from karrot_streams.web.http.errors import BadRequest, PayloadTooLarge

START = 1_796_083_200.0  # 2026-12-01T00:00:00Z


class WindowedTable:
    """The underlying table of a tumbling window: keys (key, (start, end)), default {}."""

    def __init__(self, size: float) -> None:
        self.window = TumblingWindow(size, expires=size * 400)
        self.data: dict[Any, dict[str, Any]] = {}

    def __getitem__(self, key: Any) -> dict[str, Any]:
        return self.data.get(key, {})


def test_recent_windows_end_with_the_one_under_way_oldest_first() -> None:
    table = WindowedTable(HOUR)
    windows = recent_windows(table, START + 2.5 * HOUR, HOUR, 3)
    assert [start for start, _ in windows] == [START, START + HOUR, START + 2 * HOUR]
    assert windows[0] == (START, START + HOUR - 0.1)  # as Faust keys its windows


def test_counted_skips_windows_that_counted_nothing() -> None:
    table = WindowedTable(HOUR)
    windows = recent_windows(table, START + 2.5 * HOUR, HOUR, 3)
    table.data["도서", windows[1]] = {"count": 4, "amount": 100, "applied": {}}
    table.data["도서", windows[2]] = {"count": 0, "amount": 0, "applied": {}}
    table.data["가구", windows[0]] = {"count": 9, "amount": 0, "applied": {}}

    found = [(start, c.count) for start, c in counted(table, "도서", windows)]

    assert found == [(START + HOUR, 4)]
    assert span(START, HOUR) == {
        "start": "2026-12-01T00:00:00.000Z",
        "end": "2026-12-01T01:00:00.000Z",
    }


class Content:
    def __init__(self, chunks: list[bytes], error: BaseException | None = None) -> None:
        self.chunks = chunks
        self.error = error

    async def read(self, n: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        return b""


class Request:
    def __init__(self, content: Content, content_length: int | None = None) -> None:
        self.content = content
        self.content_length = content_length


async def test_a_body_within_the_limit_is_read_whole() -> None:
    request: Any = Request(Content([b"ab", b"cd"]))
    assert await read_body(request, limit=4) == b"abcd"


async def test_a_declared_or_streamed_body_over_the_limit_is_413() -> None:
    declared: Any = Request(Content([b"x"]), content_length=10)
    with pytest.raises(PayloadTooLarge):
        await read_body(declared, limit=4)
    chunked: Any = Request(Content([b"abc", b"de"]))  # no length: counted as it is read
    with pytest.raises(PayloadTooLarge) as caught:
        await read_body(chunked, limit=4)
    assert caught.value.details == {"maxBodyBytes": 4}


@pytest.mark.parametrize(
    "error", [ConnectionResetError("gone"), HttpProcessingError(message="bad chunk")]
)
async def test_a_body_that_cannot_be_read_is_400(error: BaseException) -> None:
    request: Any = Request(Content([b"ab"], error=error))
    with pytest.raises(BadRequest, match="could not be read"):
        await read_body(request, limit=100)
