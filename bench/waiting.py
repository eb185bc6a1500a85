"""Bounded polling: every wait in the bench has a deadline and a step."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable


async def wait_until(
    done: Callable[[], Awaitable[bool]], timeout_s: float, step_s: float = 0.25
) -> bool:
    """Poll ``done`` until it holds or ``timeout_s`` has passed; whether it held."""
    for _ in range(max(1, math.ceil(timeout_s / step_s))):
        if await done():
            return True
        await asyncio.sleep(step_s)
    return await done()
