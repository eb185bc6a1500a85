"""The .avsc files in ``schemas/``: the source of truth for every subject the project owns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from karrot_streams.events.types import INPUT_TOPICS, enriched_topic, value_subject

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True)
class SubjectSchema:
    subject: str
    raw: dict[str, Any]
    parsed: Any  # fastavro's parsed schema

    @property
    def record_name(self) -> str:
        return str(self.parsed["name"])


def load(subject: str, directory: Path = SCHEMAS_DIR) -> SubjectSchema:
    raw = json.loads((directory / f"{subject}.avsc").read_text(encoding="utf-8"))
    return SubjectSchema(subject=subject, raw=raw, parsed=fastavro.parse_schema(raw))


def owned_subjects() -> list[str]:
    """Input subjects (the contract upstream producers write) and the enriched outputs."""
    return [value_subject(t) for t in INPUT_TOPICS] + [
        value_subject(enriched_topic(t)) for t in INPUT_TOPICS
    ]


def load_all(directory: Path = SCHEMAS_DIR) -> dict[str, SubjectSchema]:
    return {subject: load(subject, directory) for subject in owned_subjects()}
