"""The Confluent-API schema registry: writer schemas by id (cached), our subjects registered.

Lookups are async and single-flight: one HTTP request per unknown schema id, whatever the number of
messages waiting for it; after that, every message is decoded from memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
import httpx
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.errors import ClientError

from karrot_streams.avro.schemas import SubjectSchema
from karrot_streams.events.failures import TransientFailure, UndecodableMessage

log = logging.getLogger(__name__)

COMPATIBILITY = "BACKWARD"


class SchemaIncompatible(Exception):
    """A schema in ``schemas/`` breaks BACKWARD compatibility with what the registry holds."""


@dataclass(frozen=True, slots=True)
class WriterSchema:
    schema_id: int
    record_name: str
    parsed: Any


class SchemaRegistry:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self._client = AsyncSchemaRegistryClient(url=url, timeout=httpx.Timeout(timeout_s))
        self._writers: dict[int, WriterSchema] = {}
        self._inflight: dict[int, asyncio.Future[WriterSchema]] = {}

    def cached(self, schema_id: int) -> WriterSchema | None:
        return self._writers.get(schema_id)

    async def writer(self, schema_id: int) -> WriterSchema:
        """The writer schema of ``schema_id``; UndecodableMessage if the registry has no such id."""
        found = self._writers.get(schema_id)
        if found is not None:
            return found
        pending = self._inflight.get(schema_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._inflight[schema_id] = pending
            try:
                result = await self._fetch(schema_id)
            except (TransientFailure, UndecodableMessage) as exc:
                pending.set_exception(exc)
                pending.exception()  # mark retrieved: waiters may be none
            else:
                self._writers[schema_id] = result
                pending.set_result(result)
            finally:
                del self._inflight[schema_id]
        return await asyncio.shield(pending)

    async def _fetch(self, schema_id: int) -> WriterSchema:
        try:
            schema = await self._client.get_by_id(schema_id)
        except httpx.HTTPError as exc:
            raise TransientFailure(f"Schema registry unreachable: {exc}") from exc
        except ClientError as exc:
            if exc.http_code is not None and exc.http_code < 500:
                raise UndecodableMessage(f"Schema id {schema_id} refused: {exc.message}") from exc
            raise TransientFailure(f"Schema registry error: {exc.message}") from exc
        if schema is None:
            raise UndecodableMessage(f"Unknown schema id {schema_id}")
        if schema.schema_type != "AVRO":
            raise UndecodableMessage(f"Schema id {schema_id} is {schema.schema_type}, not Avro")
        raw = schema.raw_schema
        parsed = fastavro.parse_schema(raw)
        name = parsed.get("name") if isinstance(parsed, dict) else None
        return WriterSchema(schema_id=schema_id, record_name=str(name), parsed=parsed)

    async def ensure(self, schemas: Mapping[str, SubjectSchema]) -> dict[str, int]:
        """Set BACKWARD on each subject and register its schema; refuse an incompatible change."""
        ids: dict[str, int] = {}
        try:
            for subject, schema in schemas.items():
                await self._client.update_compatibility(COMPATIBILITY, subject)
                try:
                    schema_id = await self._client.register(subject, schema.raw)
                except ClientError as exc:
                    if exc.http_code == 409:
                        raise SchemaIncompatible(
                            f"schemas/{subject}.avsc is not {COMPATIBILITY}-compatible with the"
                            f" latest version of {subject} in the registry: {exc.server_traceback}"
                        ) from exc
                    raise
                ids[subject] = schema_id
                self._writers[schema_id] = WriterSchema(
                    schema_id, schema.record_name, schema.parsed
                )
        except httpx.HTTPError as exc:
            raise TransientFailure(f"Schema registry unreachable at {self.url}: {exc}") from exc
        return ids

    async def reachable(self) -> bool:
        try:
            await self._client.get_subjects(timeout=2.0)
        except (httpx.HTTPError, ClientError):
            return False
        return True
