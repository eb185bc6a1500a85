"""The .avsc files in ``karrot_streams/schemas/``: the source of truth for every subject we own.

They ship inside the package and are read through ``importlib.resources``, so an installed worker
or ``karrot-streams init`` finds them wherever it runs. The checkout's top-level ``schemas/``, the
path the upstream producers' contract names, is a symlink to that folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import fastavro

from karrot_streams.events.types import INPUT_TOPICS, enriched_topic, value_subject

SCHEMAS_DIR: Traversable = files("karrot_streams") / "schemas"


@dataclass(frozen=True)
class SubjectSchema:
    subject: str
    raw: dict[str, Any]
    parsed: Any  # fastavro's parsed schema

    @property
    def record_name(self) -> str:
        return str(self.parsed["name"])


def load(subject: str, directory: Traversable = SCHEMAS_DIR) -> SubjectSchema:
    raw = json.loads((directory / f"{subject}.avsc").read_text(encoding="utf-8"))
    return SubjectSchema(subject=subject, raw=raw, parsed=fastavro.parse_schema(raw))


def owned_subjects() -> list[str]:
    """Input subjects (the contract upstream producers write) and the enriched outputs."""
    return [value_subject(t) for t in INPUT_TOPICS] + [
        value_subject(enriched_topic(t)) for t in INPUT_TOPICS
    ]


def load_all(directory: Traversable = SCHEMAS_DIR) -> dict[str, SubjectSchema]:
    return {subject: load(subject, directory) for subject in owned_subjects()}
