"""What the worker knows of its own health: dependencies reachable, commits advancing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from karrot_streams.redaction import redacted


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
        # The health view is open: a detail quoting a URL must not carry its credentials.
        detail = redacted(detail)
        current = self.components.get(name)
        if current is None or current.up != up:
            self.components[name] = ComponentState(up, detail, time.monotonic())
        else:
            current.detail = detail

    def is_down(self, name: str) -> bool:
        state = self.components.get(name)
        return state is not None and not state.up
