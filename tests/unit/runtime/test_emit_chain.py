"""EmitChain: emits one after another in batch order, acks after each, nothing after a failure."""

from __future__ import annotations

import asyncio

import pytest

from karrot_streams.pipeline.agents import EmitChain


class Acked:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def ack(self) -> bool:
        self.log.append(f"ack {self.name}")
        return True


async def test_emits_run_in_order_and_ack_after_each() -> None:
    log: list[str] = []
    errors: list[BaseException] = []

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)

    async def emit(name: str, delay: float) -> None:
        log.append(f"start {name}")
        await asyncio.sleep(delay)
        log.append(f"end {name}")

    chain = EmitChain(on_error)
    # The first emit is the slow one: the second must still wait for it.
    chain.then(emit("a", 0.05), [Acked("a", log)])
    chain.then(emit("b", 0.0), [Acked("b", log)])
    await chain.wait_below(1)
    assert log == ["start a", "end a", "ack a", "start b", "end b", "ack b"]
    assert errors == []


async def test_wait_below_bounds_the_batches_in_flight() -> None:
    release = asyncio.Event()

    async def on_error(exc: BaseException) -> None:
        raise AssertionError(exc)

    async def blocked() -> None:
        await release.wait()

    chain = EmitChain(on_error)
    chain.then(blocked(), [])
    chain.then(blocked(), [])
    waiter = asyncio.ensure_future(chain.wait_below(2))
    await asyncio.sleep(0.01)
    assert not waiter.done()  # two in flight: the third batch waits
    release.set()
    await asyncio.wait_for(waiter, 1)


async def test_a_failed_emit_stops_the_chain_without_acking() -> None:
    log: list[str] = []
    errors: list[BaseException] = []

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)

    async def boom() -> None:
        raise ValueError("bug")

    async def fine() -> None:
        log.append("second emitted")

    chain = EmitChain(on_error)
    chain.then(boom(), [Acked("a", log)])
    chain.then(fine(), [Acked("b", log)])
    with pytest.raises(ValueError, match="bug"):
        await chain.wait_below(1)
    with pytest.raises(ValueError, match="bug"):
        await chain.wait_below(1)
    assert log == []  # neither batch acked, the later one never emitted
    assert [str(e) for e in errors] == ["bug"]
