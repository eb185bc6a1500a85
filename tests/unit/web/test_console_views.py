"""The console's files: shipped with the package, served from a fixed list, no inline code."""

from __future__ import annotations

import re

import pytest

from karrot_streams.web.console_views import ASSETS, PAGE, asset, asset_response


def test_every_listed_file_is_shipped() -> None:
    for name in ASSETS:
        assert asset(name), name


def test_the_page_is_utf8_and_loads_only_its_own_files() -> None:
    page = asset(PAGE).decode("utf-8")
    assert '<meta charset="utf-8">' in page
    assert "<script>" not in page  # the CSP allows no inline script
    assert not re.search(r"\s(style|on[a-z]+)=", page)  # nor inline styles or handlers
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sorted(sources) == ["/console/console.css", "/console/console.js", "data:,"]


def test_responses_carry_the_security_headers() -> None:
    response = asset_response("console.js")
    assert response.content_type == "text/javascript"
    assert response.charset == "utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", ["../settings.py", "index.htm", "", "console_views.py"])
def test_nothing_else_is_served(name: str) -> None:
    assert name not in ASSETS
    with pytest.raises(KeyError):
        asset_response(name)
