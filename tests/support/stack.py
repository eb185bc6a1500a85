"""Stop and start services of the local stack from tests (fault injection)."""

from __future__ import annotations

import asyncio
from pathlib import Path

STACK = Path(__file__).resolve().parents[2] / "stack" / "stack.sh"


async def stack(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(STACK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"stack.sh {' '.join(args)} failed: {out.decode(errors='replace')}")
