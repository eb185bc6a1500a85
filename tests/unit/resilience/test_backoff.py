"""The one wait-out-an-outage loop: retries only the transient error, reports down and up."""

from __future__ import annotations

import pytest

from karrot_streams.resilience.backoff import Backoff, Undelivered, until_delivered, until_up

FAST = Backoff(0.0001, 0.0001)


def never_down(exc: BaseException, attempt: int) -> None:
    pytest.fail(f"reported down: {exc} ({attempt})")


async def test_retries_a_transient_error_until_the_operation_answers() -> None:
    calls: list[int] = []
    downs: list[tuple[str, int]] = []
    ups: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"down {len(calls)}")
        return "answer"

    result = await until_up(
        flaky,
        FAST,
        transient=ConnectionError,
        on_down=lambda exc, attempt: downs.append((str(exc), attempt)),
        on_up=ups.append,
    )
    assert result == "answer"
    assert downs == [("down 1", 0), ("down 2", 1)]
    assert ups == [2]


async def test_no_up_report_when_nothing_failed() -> None:
    ups: list[int] = []

    async def fine() -> int:
        return 1

    assert await until_up(fine, FAST, transient=OSError, on_down=never_down, on_up=ups.append) == 1
    assert ups == []


async def test_another_error_propagates_at_once() -> None:
    async def broken() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await until_up(broken, FAST, transient=OSError, on_down=never_down)


async def test_resends_only_what_failed() -> None:
    sent: list[list[str]] = []
    downs: list[str] = []

    async def send(records: list[str]) -> list[tuple[str, BaseException]]:
        sent.append(list(records))
        return [(r, TimeoutError("no ack")) for r in records if r == "b" and len(sent) < 3]

    await until_delivered(
        send, ["a", "b", "c"], FAST, on_down=lambda exc, _: downs.append(str(exc))
    )
    assert sent == [["a", "b", "c"], ["b"], ["b"]]
    assert downs == ["no ack", "no ack"]


async def test_nothing_to_send_sends_nothing() -> None:
    async def send(records: list[str]) -> list[tuple[str, BaseException]]:
        raise AssertionError("not called")

    await until_delivered(send, [], FAST, on_down=never_down)


def test_undelivered_reads_as_its_first_error() -> None:
    first = TimeoutError("no ack")
    assert str(Undelivered(first)) == "no ack"
    assert Undelivered(first).first is first
