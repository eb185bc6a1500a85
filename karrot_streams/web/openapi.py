"""The OpenAPI 3.1 document of the worker's HTTP API, served open at ``/api/v1/openapi.json``.

Generated, not written: the paths and methods are the route table's, each operation is what its
view declares (``ApiView.operations``), and every schema is the JSON Schema of the typed models
the views parse and answer with (web/http/models.py, events/payloads.py).
``tests/integration/test_openapi_live.py`` runs schemathesis against a live worker from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from karrot_streams.settings import Settings
from karrot_streams.web.http import models
from karrot_streams.web.http.operations import Answer, Operation, declare
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView

OPENAPI_PATH = "/api/v1/openapi.json"
JSON = "application/json"
REF = "#/components/schemas/{model}"
METHODS = ("get", "put", "post", "delete", "patch")

Schema = dict[str, Any]
Routes = Sequence[tuple[str, type[ApiView]]]

ERRORS = {
    400: "Bad input; `details.field` names the field",
    401: "No valid bearer token",
    403: "A plain API token on an admin call",
    404: "Unknown resource (or the event of a consistency token)",
    409: "NOT_YET_CONSISTENT: the consistency tokens' events are not in the table yet; retry",
    413: "Body over KARROT_MAX_BODY_BYTES (or a batch over KARROT_BATCH_PUBLISH_MAX)",
    503: "A dependency (Kafka, PostgreSQL, the registry, a peer worker) is down, or start-up runs",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def document_path(route: str) -> str:
    """The route's template as the document writes it: ``{event_id}`` is ``{eventId}``."""
    return re.sub(r"\{([^}]+)\}", lambda m: "{" + _camel(m.group(1)) + "}", route)


def _operations(routes: Routes) -> Iterable[tuple[str, str, Operation]]:
    for route, view in routes:
        for method, operation in view.operations.items():
            yield document_path(route), method, operation


def _models(routes: Routes) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (models.ErrorResponse, "serialization"): None
    }
    for _, _, operation in _operations(routes):
        if operation.body is not None:
            found[(operation.body, "validation")] = None
        for answer in operation.answers.values():
            if isinstance(answer.body, type):
                found[(answer.body, "serialization")] = None
    return list(found)


def _schemas(routes: Routes, settings: Settings) -> tuple[dict[Any, str], Schema]:
    keys, top = models_json_schema(_models(routes), ref_template=REF)
    schemas: Schema = top.get("$defs", {})
    batch = schemas.get("BatchRequest")
    if batch is not None:
        batch["properties"]["events"]["maxItems"] = settings.batch_publish_max
    chat = schemas.get("ChatMessage")
    if chat is not None:
        chat["properties"]["message"]["maxLength"] = settings.max_message_length
    refs = {key: value["$ref"] for key, value in keys.items()}
    return refs, schemas


def _query_parameters(model: type[BaseModel]) -> list[Schema]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        value = {k: v for k, v in options[0].items() if k != "title"}
        if "default" in prop and prop["default"] is not None:
            value["default"] = prop["default"]
        parameter: Schema = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": value,
        }
        description = prop.get("description") or value.pop("description", None)
        value.pop("description", None)
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _operation(path: str, method: str, operation: Operation, refs: dict[Any, str]) -> Schema:
    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> Schema:
        return {"$ref": refs[(model, mode)]}

    responses: Schema = {}
    for status, answer in operation.answers.items():
        content = (
            {JSON: {"schema": ref(answer.body, "serialization")}}
            if isinstance(answer.body, type)
            else answer.body
        )
        responses[str(status)] = {"description": answer.description, "content": content}
    for status in operation.errors:
        responses[str(status)] = {
            "description": ERRORS[status],
            "content": {JSON: {"schema": ref(models.ErrorResponse, "serialization")}},
        }
    for status, headers in operation.response_headers.items():
        responses[str(status)]["headers"] = dict(headers)
    parameters: list[Schema] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", **operation.path.get(name, {}).get("schema", {})},
            **{k: v for k, v in operation.path.get(name, {}).items() if k != "schema"},
        }
        for name in re.findall(r"\{([^}]+)\}", path)
    ]
    if operation.query is not None:
        parameters += _query_parameters(operation.query)
    parameters += [{"in": "header", "required": False, **h} for h in operation.headers]
    out: Schema = {"summary": operation.summary, "responses": responses}
    if parameters:
        out["parameters"] = parameters
    if operation.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": ref(operation.body, "validation")}},
        }
    if operation.open:
        out["security"] = []
    if operation.operation_id is not None:
        out["operationId"] = operation.operation_id
    return out


def openapi_document(routes: Routes, settings: Settings) -> dict[str, Any]:
    refs, schemas = _schemas(routes, settings)
    paths: Schema = {}
    for path, method, operation in _operations(routes):
        paths.setdefault(path, {})[method] = _operation(path, method, operation, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "karrot-streams",
            "version": "1",
            "description": "The worker's HTTP API (the contract's HTTP table). Every /api/v1 path"
            " needs `Authorization: Bearer <token>` except /api/v1/monitoring/** and this"
            " document. Errors are always an ErrorResponse; never a 500 for what a client sent.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    }


def openapi_view(routes: Callable[[], Routes]) -> type[ApiView]:
    """The view serving the document of ``routes()`` (a callable: the table names this view)."""

    class OpenApiView(ApiView):
        """``GET /api/v1/openapi.json``: open, so clients and generators can fetch it."""

        operations = declare(
            get=Operation(
                "This document (open)",
                {200: Answer("OpenAPI 3.1", {JSON: {"schema": {"type": "object"}}})},
                open=True,
            )
        )

        async def get(self, request: web.Request) -> web.StreamResponse:
            settings = self.resources.settings
            document = built.get(id(settings))
            if document is None:
                document = built[id(settings)] = openapi_document(routes(), settings)
            return json_response(document)

    built: dict[int, dict[str, Any]] = {}
    return OpenApiView
