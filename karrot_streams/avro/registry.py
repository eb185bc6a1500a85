"""The Confluent-API schema registry: writer schemas by id (cached), our subjects registered.

Lookups are async and single-flight: one HTTP request per unknown schema id, whatever the number of
messages waiting for it; after that, every message is decoded from memory.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
import httpx
from fastavro.schema import to_parsing_canonical_form
from pydantic import SecretStr
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.errors import ClientError

from karrot_streams.avro.schemas import SubjectSchema
from karrot_streams.events.failures import TransientFailure, UndecodableMessage
from karrot_streams.redaction import redacted

log = logging.getLogger(__name__)

COMPATIBILITY = "BACKWARD"
#: How often an id whose cached schema failed to read a message may be looked up again.
RECHECK_EVERY_S = 10.0
#: After the registry did not answer a recheck, leave it alone this long (rechecks are a
#: fallback; they must not slow the stream while the registry is away).
RECHECK_AFTER_FAILURE_S = 30.0
RECHECK_TIMEOUT_S = 1.0
RECHECK_UNKNOWN_S = 1.0


class SchemaIncompatible(Exception):
    """A schema in ``schemas/`` breaks BACKWARD compatibility with what the registry holds."""


@dataclass(frozen=True, slots=True)
class WriterSchema:
    schema_id: int
    record_name: str
    parsed: Any


class SchemaRegistry:
    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        *,
        username: str | None = None,
        password: SecretStr | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        #: What errors and logs show: the URL without any credentials it holds.
        self.shown_url = redacted(url)
        auth = None
        if username is not None and password is not None:
            auth = httpx.BasicAuth(username, password.get_secret_value())
        self._client = AsyncSchemaRegistryClient(
            url=url, timeout=httpx.Timeout(timeout_s), auth=auth
        )
        # The library builds an httpx client per request, and httpx a TLS context per client
        # (the CA bundle read again, even for an http:// registry): 2% of a worker's CPU in
        # the bench. One context, built here, serves every request. The library applies a CA
        # bundle only together with a client certificate; ``tls`` carries both, or the CAs.
        context = tls if tls is not None else httpx.create_ssl_context()
        self._client.client_kwargs["verify"] = context
        self._writers: dict[int, WriterSchema] = {}
        self._inflight: dict[int, asyncio.Future[WriterSchema]] = {}
        #: Schemas an id named before the registry gave it another one (a registry that lost
        #: its state, such as an in-memory one restarted, hands out ids from 1 again).
        self._earlier: dict[int, list[WriterSchema]] = {}
        self._recheck_after: dict[int, float] = {}

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

    def alternatives(self, schema_id: int) -> list[WriterSchema]:
        """What ``schema_id`` named earlier, newest first (empty unless the registry reset)."""
        return list(self._earlier.get(schema_id, ()))

    async def recheck(self, schema_id: int) -> WriterSchema | None:
        """Ask the registry again for a cached id whose schema could not read a message.

        Returns the schema if the registry now names another one under this id (it is cached as
        the current one, the old one kept as an alternative); None if it is the same, unknown,
        unreachable, or was asked too recently. Never raises: this is a fallback before a
        message is dead-lettered, not a reason to stop the stream.
        """
        now = time.monotonic()
        if now < self._recheck_after.get(schema_id, 0.0):
            return None
        self._recheck_after[schema_id] = now + RECHECK_EVERY_S
        # The client library keeps its own id -> schema cache: ask the registry itself.
        self._client.id_to_schema.pop(schema_id, None)
        try:
            fresh = await asyncio.wait_for(self._fetch(schema_id), RECHECK_TIMEOUT_S)
        except (TransientFailure, TimeoutError):
            self._recheck_after[schema_id] = now + RECHECK_AFTER_FAILURE_S
            return None
        except UndecodableMessage:
            # Unknown there (yet): the registry may be filling up again after a reset.
            self._recheck_after[schema_id] = now + RECHECK_UNKNOWN_S
            return None
        current = self._writers.get(schema_id)
        if current is not None and _canonical(current) == _canonical(fresh):
            return None
        log.warning("Schema id %d now names another schema: the registry was reset", schema_id)
        self._remember(fresh)
        return fresh

    def _remember(self, writer: WriterSchema) -> None:
        """Cache ``writer`` as the current schema of its id, keeping a different earlier one."""
        current = self._writers.get(writer.schema_id)
        if current is not None and _canonical(current) != _canonical(writer):
            earlier = self._earlier.setdefault(writer.schema_id, [])
            earlier[:] = [current] + [
                w for w in earlier if _canonical(w) not in {_canonical(current), _canonical(writer)}
            ]
        self._writers[writer.schema_id] = writer

    async def _fetch(self, schema_id: int) -> WriterSchema:
        try:
            schema = await self._client.get_by_id(schema_id)
        except httpx.HTTPError as exc:
            raise TransientFailure(f"Schema registry unreachable: {redacted(str(exc))}") from exc
        except ClientError as exc:
            if exc.http_code is not None and exc.http_code < 500:
                raise UndecodableMessage(f"Schema id {schema_id} refused: {exc.message}") from exc
            raise TransientFailure(f"Schema registry error: {redacted(str(exc.message))}") from exc
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
        # The client library caches subject -> schema -> id and would answer from memory; after
        # a registry reset that answer is stale, so every call here asks the registry.
        self._client.subject_to_schema_ids.clear()
        self._client.subject_to_schema_versions.clear()
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
                self._remember(WriterSchema(schema_id, schema.record_name, schema.parsed))
        except httpx.HTTPError as exc:
            raise TransientFailure(
                f"Schema registry unreachable at {self.shown_url}: {redacted(str(exc))}"
            ) from exc
        return ids

    async def registered_ids(self, schemas: Mapping[str, SubjectSchema]) -> dict[str, int | None]:
        """The id the registry has for each subject's schema now (None: not registered there).

        Read-only lookups (``POST /subjects/{subject}``), asked of the registry itself, not of
        the client library's memory.
        """
        self._client.subject_to_schema_ids.clear()
        self._client.subject_to_schema_versions.clear()
        found: dict[str, int | None] = {}
        try:
            for subject, schema in schemas.items():
                version = await self._client.check_version(subject, schema.raw)
                found[subject] = version.schema_id if version is not None else None
        except httpx.HTTPError as exc:
            raise TransientFailure(
                f"Schema registry unreachable at {self.shown_url}: {redacted(str(exc))}"
            ) from exc
        except ClientError as exc:
            raise TransientFailure(f"Schema registry error: {redacted(str(exc.message))}") from exc
        return found

    async def reachable(self) -> bool:
        try:
            await self._client.get_subjects(timeout=2.0)
        except (httpx.HTTPError, ClientError):
            return False
        return True


def _canonical(writer: WriterSchema) -> str:
    return str(to_parsing_canonical_form(writer.parsed))
