"""SchemaRegistry over a fake registry client: what each answer of the registry means for the
pipeline (a schema, a poison message, or an outage to wait out) and for start-up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from schema_registry.client.errors import ClientError

from karrot_streams.avro import registry as registry_module
from karrot_streams.avro import schemas
from karrot_streams.avro.registry import SchemaIncompatible, SchemaRegistry
from karrot_streams.events.failures import TransientFailure, UndecodableMessage


@dataclass
class FakeSchema:
    raw_schema: dict[str, Any]
    schema_type: str = "AVRO"


@dataclass
class FakeVersion:
    schema_id: int


@dataclass
class FakeClient:
    """The subset of AsyncSchemaRegistryClient SchemaRegistry uses, scripted per test."""

    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    by_id: dict[int, FakeSchema | BaseException | None] = field(default_factory=dict)
    subjects: dict[str, int] = field(default_factory=dict)
    failure: BaseException | None = None
    #: Raised by ``register`` only (a 409 is the registry refusing that one schema).
    register_failure: BaseException | None = None
    lookups: int = 0
    compatibility: list[tuple[str, str]] = field(default_factory=list)
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    id_to_schema: dict[int, Any] = field(default_factory=dict)
    subject_to_schema_ids: dict[str, Any] = field(default_factory=dict)
    subject_to_schema_versions: dict[str, Any] = field(default_factory=dict)

    def _fail(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def get_by_id(self, schema_id: int) -> FakeSchema | None:
        self.lookups += 1
        await asyncio.sleep(0)  # let concurrent lookups for the same id pile up
        answer = self.by_id.get(schema_id)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def update_compatibility(self, level: str, subject: str) -> None:
        self._fail()
        self.compatibility.append((subject, level))

    async def register(self, subject: str, raw: dict[str, Any]) -> int:
        self._fail()
        if self.register_failure is not None:
            raise self.register_failure
        return self.subjects.setdefault(subject, 10 + len(self.subjects))

    async def check_version(self, subject: str, raw: dict[str, Any]) -> FakeVersion | None:
        self._fail()
        found = self.subjects.get(subject)
        return None if found is None else FakeVersion(found)

    async def get_subjects(self, **options: Any) -> list[str]:
        self._fail()
        return list(self.subjects)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    """The client every SchemaRegistry of the test gets (it records how it was made)."""
    fake = FakeClient("")

    def factory(url: str, **kwargs: Any) -> FakeClient:
        fake.url, fake.kwargs = url, kwargs
        return fake

    monkeypatch.setattr(registry_module, "AsyncSchemaRegistryClient", factory)
    return fake


def registry_with(client: FakeClient) -> SchemaRegistry:
    registry = SchemaRegistry("http://registry:8081")
    assert client.url == "http://registry:8081"
    return registry


ITEM = schemas.load("item-events-value")
USER = schemas.load("user-events-value")


async def test_a_schema_is_fetched_once_for_any_number_of_waiting_messages(
    client: FakeClient,
) -> None:
    client.by_id[7] = FakeSchema(ITEM.raw)
    registry = registry_with(client)

    writers = await asyncio.gather(*(registry.writer(7) for _ in range(5)))

    assert {w.schema_id for w in writers} == {7}
    assert writers[0].record_name == ITEM.record_name
    assert client.lookups == 1
    assert registry.cached(7) is writers[0]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (None, UndecodableMessage, "Unknown schema id 7"),
        (FakeSchema({"type": "string"}, "JSON"), UndecodableMessage, "is JSON, not Avro"),
        (ClientError("Schema not found", http_code=404), UndecodableMessage, "refused"),
        (ClientError("Internal error", http_code=500), TransientFailure, "Schema registry error"),
        (httpx.ConnectError("refused"), TransientFailure, "unreachable"),
    ],
    ids=["unknown", "not-avro", "404", "500", "connection"],
)
async def test_what_the_registry_says_decides_poison_or_outage(
    client: FakeClient, answer: Any, error: type[Exception], message: str
) -> None:
    client.by_id[7] = answer
    registry = registry_with(client)

    with pytest.raises(error, match=message):
        await registry.writer(7)
    assert registry.cached(7) is None  # neither is remembered: the next message asks again


async def test_credentials_never_show_in_an_outage_message(client: FakeClient) -> None:
    client.by_id[7] = httpx.ConnectError("refused by https://bob:hunter2@registry:8081")
    registry = SchemaRegistry(
        "https://bob:hunter2@registry:8081", username="bob", password=SecretStr("hunter2")
    )
    assert isinstance(client.kwargs["auth"], httpx.BasicAuth)

    with pytest.raises(TransientFailure) as caught:
        await registry.writer(7)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in registry.shown_url


async def test_ensure_registers_every_subject_backward_and_caches_the_writers(
    client: FakeClient,
) -> None:
    registry = registry_with(client)
    subjects = {"item-events-value": ITEM, "user-events-value": USER}

    ids = await registry.ensure(subjects)

    assert ids == {"item-events-value": 10, "user-events-value": 11}
    assert client.compatibility == [
        ("item-events-value", "BACKWARD"),
        ("user-events-value", "BACKWARD"),
    ]
    cached = registry.cached(10)
    assert cached is not None and cached.record_name == ITEM.record_name
    assert await registry.registered_ids(subjects) == ids
    assert await registry.registered_ids({"chat-events-value": ITEM}) == {"chat-events-value": None}


async def test_an_incompatible_schema_stops_start_up_and_an_outage_waits(
    client: FakeClient,
) -> None:
    registry = registry_with(client)
    client.register_failure = ClientError("conflict", http_code=409, server_traceback="removed")
    with pytest.raises(SchemaIncompatible, match="not BACKWARD-compatible"):
        await registry.ensure({"item-events-value": ITEM})
    client.register_failure = ClientError("bad request", http_code=422)
    with pytest.raises(ClientError):
        await registry.ensure({"item-events-value": ITEM})
    client.register_failure = None

    client.failure = httpx.ConnectError("refused")
    with pytest.raises(TransientFailure):
        await registry.ensure({"item-events-value": ITEM})
    with pytest.raises(TransientFailure):
        await registry.registered_ids({"item-events-value": ITEM})
    assert await registry.reachable() is False
    client.failure = ClientError("boom", http_code=503)
    with pytest.raises(TransientFailure):
        await registry.registered_ids({"item-events-value": ITEM})

    client.failure = None
    assert await registry.reachable() is True


async def test_recheck_finds_a_reset_registry_and_keeps_the_old_meaning(
    client: FakeClient,
) -> None:
    client.by_id[5] = FakeSchema(USER.raw)
    registry = registry_with(client)
    old = await registry.writer(5)
    client.by_id[5] = FakeSchema(ITEM.raw)  # the registry lost its state: id 5 is another schema

    fresh = await registry.recheck(5)

    assert fresh is not None and fresh.record_name == ITEM.record_name
    assert registry.cached(5) is fresh
    assert registry.alternatives(5) == [old]
    assert await registry.recheck(5) is None  # asked too recently: throttled


async def test_a_recheck_answered_with_the_same_schema_changes_nothing(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "RECHECK_EVERY_S", 0.0)
    client.by_id[5] = FakeSchema(USER.raw)
    registry = registry_with(client)
    writer = await registry.writer(5)

    assert await registry.recheck(5) is None
    assert await registry.recheck(5) is None  # not throttled here: asked again, same answer
    assert client.lookups == 3
    assert registry.cached(5) is writer
    assert registry.alternatives(5) == []


@pytest.mark.parametrize(
    "answer", [httpx.ConnectError("refused"), None], ids=["unreachable", "unknown"]
)
async def test_a_recheck_that_gets_no_schema_never_raises(client: FakeClient, answer: Any) -> None:
    client.by_id[5] = FakeSchema(USER.raw)
    registry = registry_with(client)
    await registry.writer(5)
    client.by_id[5] = answer

    assert await registry.recheck(5) is None
    assert registry.cached(5) is not None  # the schema it had stays in use
