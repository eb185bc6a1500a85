"""What each view method declares about itself for the OpenAPI document (web/openapi.py).

A view lists its operations (``ApiView.operations``): the summary, the body and query models it
reads, and each status it answers with the model of that answer. The document is generated from
these and the route table; nothing describes the API beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

#: A response: a model (JSON), or a raw OpenAPI ``content`` mapping (text, HTML).
Body = type[BaseModel] | dict[str, Any]


@dataclass(frozen=True)
class Answer:
    description: str
    body: Body


@dataclass(frozen=True)
class Operation:
    summary: str
    answers: Mapping[int, Answer]
    #: Error statuses answered with an ErrorResponse (described in web/openapi.py).
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    #: Extra schema of a path parameter, by its name in the document (``topic``: an enum).
    path: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Header parameters (OpenAPI parameter objects without ``in``).
    headers: tuple[Mapping[str, Any], ...] = ()
    #: Open: no bearer token needed (``security: []``).
    open: bool = False
    operation_id: str | None = None
    #: Extra response headers by status (OpenAPI header objects).
    response_headers: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)


#: The W3C trace context a publish takes (monitoring/tracing.py).
TRACE_HEADERS: tuple[Mapping[str, Any], ...] = (
    {
        "name": "traceparent",
        "description": "W3C trace context; put on the produced record. Absent or malformed:"
        " a new trace is started.",
        "schema": {"type": "string"},
    },
    {
        "name": "tracestate",
        "description": "W3C trace state, kept with a valid traceparent.",
        "schema": {"type": "string"},
    },
)
TEXT: dict[str, Any] = {"text/plain": {"schema": {"type": "string"}}}
HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}


def declare(**by_method: Operation) -> Mapping[str, Operation]:
    """A view's operations by method (``get=Operation(...)``), read-only."""
    return MappingProxyType(by_method)
