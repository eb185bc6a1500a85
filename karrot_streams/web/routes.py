"""HTTP routes of the worker (filled in by the web issue)."""

from __future__ import annotations

from typing import Any


def register(app: Any) -> None:
    return None
