"""Stop and start services of the local stack from tests (fault injection)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

STACK = Path(__file__).resolve().parents[2] / "stack" / "stack.sh"


async def stack(*args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``stack/stack.sh ARGS``; ``env`` adds variables (another folder, other ports)."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(STACK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env} if env is not None else None,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"stack.sh {' '.join(args)} failed: {out.decode(errors='replace')}")
    return out.decode(errors="replace")
