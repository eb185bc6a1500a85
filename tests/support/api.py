"""Read the aggregates through the worker's HTTP API, and compare them with the truth."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any
from urllib.parse import quote

import httpx

from tests.support.truth import Truth
from tests.support.worker import API_TOKEN as TOKEN


async def get_json(client: httpx.AsyncClient, base: str, path: str) -> Any:
    response = await client.get(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    return response.json()


def _same(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    for key, value in expected.items():
        if isinstance(value, float):
            if not math.isclose(value, got.get(key) or 0.0, rel_tol=1e-9):
                return False
        elif got.get(key) != value:
            return False
    return True


async def differences(base: str, truth: Truth) -> list[str]:
    """Every category and seller of the truth whose API answer differs; empty when all agree."""
    out: list[str] = []
    async with httpx.AsyncClient(timeout=10.0) as client:
        for category, expected in truth.categories.items():
            got = await get_json(client, base, f"/api/v1/categories/{quote(category, safe='')}")
            want = {k: v for k, v in expected.items() if k != "soldAmount"}
            if not _same(want, got):
                out.append(f"category {category}: want {want}, got {got}")
        for seller_id, expected in truth.sellers.items():
            got = await get_json(client, base, f"/api/v1/sellers/{quote(seller_id)}/sales")
            if not _same(expected, got):
                out.append(f"seller {seller_id}: want {expected}, got {got}")
    return out


async def wait_until_equal(base: str, truth: Truth, timeout_s: float = 120.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    diffs = ["not checked"]
    while time.monotonic() < deadline:
        try:
            diffs = await differences(base, truth)
        except httpx.HTTPError as exc:
            diffs = [f"HTTP error: {exc!r}"]
        if not diffs:
            return []
        await asyncio.sleep(1.0)
    return diffs
