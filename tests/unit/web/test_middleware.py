"""The /api/v1 middleware on a bare aiohttp app: tokens first, then every error as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from karrot_streams.peer_auth import PeerAuth
from karrot_streams.publishing.errors import PublishUnavailable
from karrot_streams.web.http.auth import TokenCheck
from karrot_streams.web.http.errors import ValidationFailed
from karrot_streams.web.http.middleware import api_middleware
from karrot_streams.web.http.responses import json_response

TOKEN = {"Authorization": "Bearer good"}
ERROR_FIELDS = {"code", "message", "timestamp", "path", "details"}


async def ok(request: web.Request) -> web.StreamResponse:
    return json_response({"ok": True, "category": request.match_info.get("category")})


async def invalid(request: web.Request) -> web.StreamResponse:
    raise ValidationFailed("Price cannot be negative", details={"field": "payload.price"})


async def kafka_down(request: web.Request) -> web.StreamResponse:
    raise PublishUnavailable(
        "Kafka did not accept the event; it is stored as FAILED",
        details={"eventId": "e-1", "reason": "no answer within 15s"},
    )


async def broken(request: web.Request) -> web.StreamResponse:
    raise RuntimeError("secret internals")


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[api_middleware(TokenCheck(["good"]), PeerAuth(b"k" * 32))])
    app.router.add_get("/api/v1/things/{category}", ok)
    app.router.add_post("/api/v1/invalid", invalid)
    app.router.add_get("/api/v1/broken", broken)
    app.router.add_post("/api/v1/publish", kafka_down)
    app.router.add_get("/api/v1/monitoring/health", ok)
    app.router.add_get("/metrics", broken)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def error_of(response: ClientResponse, status: int) -> dict[str, object]:
    assert response.status == status
    assert response.content_type == "application/json"
    body: dict[str, object] = await response.json()
    assert set(body) == ERROR_FIELDS
    assert str(body["timestamp"]).endswith("Z")
    return body


async def test_token_required(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/api/v1/things/a")
    body = await error_of(response, 401)
    assert body["code"] == "UNAUTHORIZED"
    assert body["path"] == "/api/v1/things/a"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    await error_of(await client.get("/api/v1/things/a", headers={"Authorization": "Bearer x"}), 401)


async def test_with_token(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/api/v1/things/%EB%94%94%EC%A7%80%ED%84%B8", headers=TOKEN)
    assert response.status == 200
    assert (await response.json())["category"] == "디지털"


async def test_monitoring_is_open(client: TestClient[web.Request, web.Application]) -> None:
    assert (await client.get("/api/v1/monitoring/health")).status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/monitoring/../things/a",
        "/api/v1/monitoring/%2E%2E/things/a",
        "/api/v1/monitoring/..%2Fthings/a",
        "/api/v1/monitoring/health/../../things/a",
    ],
)
async def test_open_prefix_does_not_open_other_routes(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    response = await client.get(URL(path, encoded=True))
    assert response.status in (401, 404)
    await error_of(response, response.status)


async def test_unknown_path(client: TestClient[web.Request, web.Application]) -> None:
    await error_of(await client.get("/api/v1/nothing"), 401)  # tokens are checked first
    body = await error_of(await client.get("/api/v1/nothing", headers=TOKEN), 404)
    assert body["code"] == "NOT_FOUND"
    await error_of(await client.get("/api/v1/monitoring/nothing"), 404)


async def test_wrong_method(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.delete("/api/v1/things/a", headers=TOKEN)
    body = await error_of(response, 405)
    assert body["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in response.headers["Allow"]


async def test_api_error(client: TestClient[web.Request, web.Application]) -> None:
    body = await error_of(await client.post("/api/v1/invalid", headers=TOKEN), 400)
    assert body["code"] == "EVENT_VALIDATION_FAILED"
    assert body["details"] == {"field": "payload.price"}


async def test_unexpected_error_is_500_without_internals(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/api/v1/broken", headers=TOKEN)
    body = await error_of(response, 500)
    assert body["code"] == "INTERNAL_ERROR"
    assert "secret" not in await response.text()
    assert "secret internals" in caplog.text


async def test_paths_outside_the_api_are_untouched(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/metrics")
    assert response.status == 500
    assert response.content_type != "application/json"
    assert (await client.get("/elsewhere")).content_type != "application/json"


async def test_a_publishing_outage_is_the_same_503(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.post("/api/v1/publish", headers=TOKEN)
    body = await error_of(response, 503)
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert body["message"] == "Kafka did not accept the event; it is stored as FAILED"
    assert body["details"] == {"eventId": "e-1", "reason": "no answer within 15s"}
    assert response.headers["Retry-After"] == "5"
