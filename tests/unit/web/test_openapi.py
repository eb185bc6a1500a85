"""The OpenAPI document: valid OpenAPI 3.1, and it describes every route the worker serves."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from karrot_streams.settings import Settings
from karrot_streams.web.http.auth import needs_token
from karrot_streams.web.openapi import OPENAPI_PATH, openapi_document
from karrot_streams.web.route_table import ROUTES


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(ROUTES, Settings(batch_publish_max=7))


def _shape(path: str) -> str:
    """A path template with its parameter names left out: ``/a/{x}`` and ``/a/{y}`` are one."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_the_validator_refuses_a_broken_document(document: dict[str, Any]) -> None:
    broken = {**document, "paths": {"/x": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_route_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    """Every route a client may call; the workers' own (``/internal``) declare no operation."""
    public = {_shape(path) for path, view in ROUTES if view.operations}
    assert public == {_shape(path) for path in document["paths"]}
    internal = [path for path, view in ROUTES if not view.operations]
    assert internal == ["/internal/items/{item_id}"]


def test_every_view_method_is_documented(document: dict[str, Any]) -> None:
    by_shape = {_shape(path): item for path, item in document["paths"].items()}
    for path, view in ROUTES:
        methods = {m for m in ("get", "post", "put", "delete", "patch") if m in vars(view)}
        if view.operations:
            assert methods == set(by_shape[_shape(path)]), path


def test_security_follows_the_token_rules(document: dict[str, Any]) -> None:
    """An operation is open in the document exactly when the middleware lets it through."""
    assert document["security"] == [{"bearerAuth": []}]
    for path, item in document["paths"].items():
        for operation in item.values():
            documented_open = operation.get("security") == []
            assert documented_open is not needs_token(path), path
            if needs_token(path):
                assert "401" in operation["responses"], path
    assert not needs_token(OPENAPI_PATH)


def test_errors_use_the_error_response_and_settings_shape_limits(
    document: dict[str, Any],
) -> None:
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in document["paths"].items():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path.startswith("/api/v1/"):
                    if path.endswith(("/health", "/ready")) or status == "422":
                        continue  # the Health body with DOWN; a batch's results, none published
                    assert response["content"]["application/json"]["schema"] == error_ref
    events = document["components"]["schemas"]["BatchRequest"]["properties"]["events"]
    assert events["maxItems"] == 7
    assert "500" not in str(
        [op["responses"] for item in document["paths"].values() for op in item.values()]
    )
