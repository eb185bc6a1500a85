"""What the worker knows of its own health: dependencies reachable, commits advancing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class ComponentState:
    up: bool
    detail: str
    since: float


@dataclass(slots=True)
class Health:
    """Updated by the pipeline as it meets outages; read by the health view."""

    components: dict[str, ComponentState] = field(default_factory=dict)

    def report(self, name: str, up: bool, detail: str = "") -> None:
        current = self.components.get(name)
        if current is None or current.up != up:
            self.components[name] = ComponentState(up, detail, time.monotonic())
        else:
            current.detail = detail

    def is_down(self, name: str) -> bool:
        state = self.components.get(name)
        return state is not None and not state.up
