"""Forwarded queries are signed with the peer secret; the client's token never travels on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from yarl import URL

from karrot_streams.app import create_app
from karrot_streams.peer_auth import (
    FORWARDED_HEADER,
    MAX_SKEW_S,
    PEER_HEADER,
    PeerAuth,
    from_peer,
)
from karrot_streams.serving import UnsafeConfiguration
from karrot_streams.settings import Settings
from karrot_streams.web.http.auth import TokenCheck
from karrot_streams.web.http.middleware import api_middleware
from karrot_streams.web.owner_forwarding import ask, forwarded_headers

KEY = b"a-peer-secret-of-the-group"
NOW = 1_800_000_000.0


def auth(key: bytes = KEY, now: float = NOW) -> PeerAuth:
    return PeerAuth(key, clock=lambda: now)


def test_a_signature_verifies_for_its_request_only() -> None:
    signature = auth().sign("GET", "/api/v1/categories/%EB%94%94", "a=1")
    assert auth().verify(signature, "GET", "/api/v1/categories/%EB%94%94", "a=1")
    assert not auth().verify(signature, "GET", "/api/v1/categories/other", "a=1")
    assert not auth().verify(signature, "GET", "/api/v1/categories/%EB%94%94", "a=2")
    assert not auth().verify(signature, "POST", "/api/v1/categories/%EB%94%94", "a=1")
    assert not auth(b"another-groups-secret").verify(
        signature, "GET", "/api/v1/categories/%EB%94%94", "a=1"
    )


def test_a_signature_expires() -> None:
    signature = auth().sign("GET", "/p", "")
    assert auth(now=NOW + MAX_SKEW_S - 1).verify(signature, "GET", "/p", "")
    assert not auth(now=NOW + MAX_SKEW_S + 1).verify(signature, "GET", "/p", "")
    assert not auth(now=NOW - MAX_SKEW_S - 1).verify(signature, "GET", "/p", "")


@pytest.mark.parametrize("value", [None, "", "1", "abc.def", ".", "1800000000.", "-5.00"])
def test_garbage_is_not_a_signature(value: str | None) -> None:
    assert not auth().verify(value, "GET", "/p", "")


def test_the_secret_is_not_in_the_signature() -> None:
    assert KEY.decode() not in auth().sign("GET", "/p", "")


def test_forwarded_headers_drop_the_clients_token() -> None:
    request = make_mocked_request(
        "GET",
        "/api/v1/categories/x?y=1",
        headers={"Authorization": "Bearer client-token", "Accept": "application/json"},
    )
    headers = forwarded_headers(request, auth())
    assert "Authorization" not in headers
    assert "client-token" not in str(headers)
    assert headers["Accept"] == "application/json"
    assert headers[FORWARDED_HEADER] == "1"
    assert auth().verify(headers[PEER_HEADER], "GET", "/api/v1/categories/x", "y=1")


async def seen(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        {"fromPeer": from_peer(request), "authorization": request.headers.get("Authorization")}
    )


@pytest.fixture
async def owner() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A worker's API: tokens or a peer signature, as the real middleware checks them."""
    app = web.Application(middlewares=[api_middleware(TokenCheck(["client-token"]), PeerAuth(KEY))])
    app.router.add_get("/api/v1/categories/{category}", seen)
    app.router.add_post("/api/v1/categories/{category}", seen)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_a_forwarded_query_reaches_the_owner_signed_and_without_the_token(
    owner: TestClient[web.Request, web.Application],
) -> None:
    client_request = make_mocked_request(
        "GET", "/api/v1/categories/x", headers={"Authorization": "Bearer client-token"}
    )
    async with aiohttp.ClientSession() as session:
        answer = await ask(session, URL(str(owner.make_url("/"))), client_request, PeerAuth(KEY))
    assert answer.status == 200
    body = json.loads(answer.body)
    assert body == {"fromPeer": True, "authorization": None}


async def test_a_clients_hop_header_is_ignored(
    owner: TestClient[web.Request, web.Application],
) -> None:
    # Without a token: the hop header does not let it in.
    hop_only = await owner.get("/api/v1/categories/x", headers={FORWARDED_HEADER: "1"})
    assert hop_only.status == 401
    # With a token: served, but not as a peer (so it is routed like any client request).
    with_token = await owner.get(
        "/api/v1/categories/x",
        headers={FORWARDED_HEADER: "1", "Authorization": "Bearer client-token"},
    )
    assert with_token.status == 200
    assert (await with_token.json())["fromPeer"] is False
    # A signature made with another secret is no better.
    forged = await owner.get(
        "/api/v1/categories/x",
        headers={
            FORWARDED_HEADER: "1",
            PEER_HEADER: PeerAuth(b"guessed-secret-xxxx").sign("GET", "/api/v1/categories/x", ""),
        },
    )
    assert forged.status == 401


async def test_a_peer_signature_only_reads(
    owner: TestClient[web.Request, web.Application],
) -> None:
    signature = PeerAuth(KEY).sign("POST", "/api/v1/categories/x", "")
    answer = await owner.post(
        "/api/v1/categories/x", headers={FORWARDED_HEADER: "1", PEER_HEADER: signature}
    )
    assert answer.status == 401


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("KARROT_PEER_SECRET", "KARROT_WEB_HOST", "KARROT_ADVERTISED_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KARROT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KARROT_API_TOKENS", "own-api-token")
    monkeypatch.setenv("KARROT_ADMIN_TOKENS", "own-admin-token")
    return monkeypatch


def test_the_derived_key_is_shared_by_a_groups_workers(clean_env: pytest.MonkeyPatch) -> None:
    first, second = Settings(), Settings()
    assert first.peer_key == second.peer_key
    clean_env.setenv("KARROT_APP_ID", "another-app")
    assert Settings().peer_key != first.peer_key
    clean_env.setenv("KARROT_PEER_SECRET", "x" * 20)
    assert Settings().peer_key == b"x" * 20


def test_a_short_peer_secret_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KARROT_PEER_SECRET", "short")
    with pytest.raises(ValueError, match="KARROT_PEER_SECRET"):
        Settings()


def test_off_loopback_the_peer_secret_is_required(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KARROT_WEB_HOST", "10.1.2.3")
    with pytest.raises(UnsafeConfiguration, match="KARROT_PEER_SECRET"):
        create_app(Settings())
    clean_env.setenv("KARROT_PEER_SECRET", "a-long-enough-peer-secret")
    assert str(create_app(Settings()).conf.canonical_url) == "http://10.1.2.3:6066"
