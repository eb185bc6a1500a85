"""Where a worker binds, what it advertises, and the configurations it refuses to serve."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydantic import SecretStr
from yarl import URL

from karrot_streams.app import create_app
from karrot_streams.serving import (
    UnsafeConfiguration,
    advertised_url,
    is_loopback,
    serving_problems,
)
from karrot_streams.settings import Settings

DEMO = (SecretStr("local-dev-token"), SecretStr("local-admin-token"))
ANY = "0.0.0.0"  # noqa: S104  the wildcard under test, nothing is bound to it
OWN = (SecretStr("s3cret-api"), SecretStr("s3cret-admin"))


@pytest.fixture(autouse=True)
def _no_web_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "KARROT_WEB_HOST",
        "KARROT_WEB_PORT",
        "KARROT_ADVERTISED_URL",
        "KARROT_API_TOKENS",
        "KARROT_ADMIN_TOKENS",
        "KARROT_ALLOW_DEMO_TOKENS",
        "KARROT_PEER_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KARROT_DATA_DIR", str(tmp_path))


def test_defaults_bind_loopback_and_advertise_it() -> None:
    settings = Settings()
    assert settings.web_host == "127.0.0.1"
    assert settings.canonical_url == "http://127.0.0.1:6066"


@pytest.mark.parametrize("wildcard", [ANY, "::", ""])
def test_a_wildcard_bind_advertises_the_host_name(wildcard: str) -> None:
    url = advertised_url(None, wildcard, 7000)
    assert url == f"http://{socket.gethostname()}:7000"
    assert ANY not in url


def test_an_address_bind_advertises_that_address() -> None:
    assert advertised_url(None, "127.0.0.2", 6066) == "http://127.0.0.2:6066"
    assert advertised_url(None, "fd00::5", 6066) == "http://[fd00::5]:6066"


def test_the_advertised_url_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARROT_WEB_HOST", ANY)
    monkeypatch.setenv("KARROT_ADVERTISED_URL", "http://worker-7.internal:6066")
    monkeypatch.setenv("KARROT_API_TOKENS", "own-token")
    monkeypatch.setenv("KARROT_ADMIN_TOKENS", "own-admin")
    monkeypatch.setenv("KARROT_PEER_SECRET", "a-long-enough-peer-secret")
    settings = Settings()
    assert settings.canonical_url == "http://worker-7.internal:6066"
    app = create_app(settings)
    assert str(app.conf.canonical_url) == "http://worker-7.internal:6066"
    assert app.conf.web_bind == ANY


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        (ANY, False),
        ("10.1.2.3", False),
        ("worker-1.internal", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_wildcard_advertised_url_is_refused() -> None:
    problems = serving_problems(
        bind_host=ANY,
        canonical_url="http://0.0.0.0:6066",
        tokens=OWN,
        allow_demo_tokens=False,
    )
    assert len(problems) == 1
    assert "KARROT_ADVERTISED_URL" in problems[0]


def test_demo_tokens_off_loopback_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARROT_WEB_HOST", ANY)
    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(Settings())
    message = str(refused.value)
    for variable in ("KARROT_API_TOKENS", "KARROT_ADMIN_TOKENS", "KARROT_ALLOW_DEMO_TOKENS"):
        assert variable in message
    assert "local-dev-token" in message
    assert "local-admin-token" in message


def test_one_demo_token_is_enough_to_refuse() -> None:
    problems = serving_problems(
        bind_host="10.0.0.5",
        canonical_url="http://10.0.0.5:6066",
        tokens=(OWN[0], DEMO[1]),
        allow_demo_tokens=False,
    )
    assert len(problems) == 1
    assert "local-admin-token" in problems[0]
    assert "local-dev-token" not in problems[0]


def test_demo_tokens_on_loopback_or_when_allowed_are_served() -> None:
    on_loopback = serving_problems(
        bind_host="127.0.0.1",
        canonical_url="http://127.0.0.1:6066",
        tokens=DEMO,
        allow_demo_tokens=False,
    )
    allowed = serving_problems(
        bind_host=ANY,
        canonical_url="http://box:6066",
        tokens=DEMO,
        allow_demo_tokens=True,
    )
    own_tokens = serving_problems(
        bind_host=ANY, canonical_url="http://box:6066", tokens=OWN, allow_demo_tokens=False
    )
    assert on_loopback == allowed == own_tokens == []


def test_demo_allowed_by_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARROT_WEB_HOST", ANY)
    monkeypatch.setenv("KARROT_ALLOW_DEMO_TOKENS", "true")
    app = create_app(Settings())
    assert str(app.conf.canonical_url) == f"http://{socket.gethostname()}:6066"


async def test_the_check_runs_again_at_start_on_what_the_cli_changed() -> None:
    app = create_app(Settings())
    # What ``faust worker --web-bind 0.0.0.0 --web-host 0.0.0.0`` does after create_app().
    app.conf.web_bind = ANY
    app.conf.canonical_url = URL("http://0.0.0.0:6066")
    with pytest.raises(UnsafeConfiguration, match="KARROT_ADVERTISED_URL"):
        await app.on_first_start()


def test_faust_builtin_pages_are_off() -> None:
    conf = create_app(Settings()).conf
    assert conf.web_router_enabled is False
    assert conf.web_tables_enabled is False
    assert conf.web_graph_enabled is False
    assert conf.web_stats_enabled is False
