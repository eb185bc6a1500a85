"""The OpenAPI 3.1 document of the worker's HTTP API, served open at ``/api/v1/openapi.json``.

Written next to the views, from the same constants (event types, payload fields, limits), so the
document cannot drift from them silently; ``tests/integration/test_openapi_live.py`` runs
schemathesis against a live worker from it (every response must conform).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from karrot_streams.dlq.selection import DEAD_LETTER_TOPICS
from karrot_streams.events.types import PAYLOAD_FIELDS, PAYLOAD_RECORD_OF, EventType
from karrot_streams.events.validation import EMAIL, MAX_ID_LENGTH, MAX_MESSAGE_LENGTH
from karrot_streams.settings import Settings
from karrot_streams.store.event_store import Status
from karrot_streams.web.console_views import ASSETS
from karrot_streams.web.dlq_requests import LIMITS, LIST_MAX_LIMIT
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView

OPENAPI_PATH = "/api/v1/openapi.json"
JSON = "application/json"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], *, required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
INSTANT: Schema = {"type": "string", "description": "ISO-8601 UTC, milliseconds, `Z`"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_INSTANT: Schema = {"type": ["string", "null"], "description": INSTANT["description"]}


#: A required string: not blank (the validator strips it), without NUL, within an id's length.
TEXT: Schema = {"type": "string", "pattern": r"\S", "maxLength": MAX_ID_LENGTH}
#: Constraints of the validator's rules, so generated examples can pass them.
RULES: dict[str, Schema] = {
    "email": {"type": "string", "pattern": EMAIL.pattern, "maxLength": MAX_ID_LENGTH},
    "price": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "amount": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    "message": {"type": "string", "pattern": r"\S", "maxLength": MAX_MESSAGE_LENGTH},
}


def _payload_schema(record: str) -> Schema:
    fields = PAYLOAD_FIELDS[record]
    kinds = {"str": TEXT, "str?": NULLABLE_STRING, "int": INTEGER}
    return {
        "title": record.rsplit(".", 1)[-1],
        **_object(
            {name: RULES.get(name, kinds[kind]) for name, kind in fields.items()},
            required=[name for name, kind in fields.items() if not kind.endswith("?")],
        ),
    }


def _publish_request(event_type: EventType) -> Schema:
    return {
        "title": event_type.value,
        **_object(
            {
                "eventType": {"const": event_type.value},
                "aggregateId": TEXT,
                "payload": _ref(PAYLOAD_RECORD_OF[event_type].rsplit(".", 1)[-1]),
                "correlationId": NULLABLE_STRING,
                "userId": NULLABLE_STRING,
                "source": NULLABLE_STRING,
            },
            required=["eventType", "aggregateId", "payload"],
        ),
    }


def _schemas(settings: Settings) -> dict[str, Schema]:
    window = {"start": INSTANT, "end": INSTANT}
    return {
        "ErrorResponse": {
            "description": "Every error of /api/v1 (the seed's ErrorResponse).",
            **_object(
                {
                    "code": {"type": "string", "examples": ["INVALID_REQUEST"]},
                    "message": STRING,
                    "timestamp": INSTANT,
                    "path": STRING,
                    "details": {"type": ["object", "null"]},
                }
            ),
        },
        **{record.rsplit(".", 1)[-1]: _payload_schema(record) for record in PAYLOAD_FIELDS},
        "PublishRequest": {
            "description": "One event to publish: its type names its payload record (contract).",
            "oneOf": [_publish_request(event_type) for event_type in EventType],
        },
        "Published": _object(
            {
                "eventId": STRING,
                "status": {"const": Status.PUBLISHED.value},
                "publishedAt": INSTANT,
                "topic": STRING,
                "partition": INTEGER,
                "offset": INTEGER,
            }
        ),
        "StoredEvent": _object(
            {
                "eventId": STRING,
                "eventType": STRING,
                "aggregateId": STRING,
                "status": {"type": "string", "enum": [s.value for s in Status]},
                "eventTime": INSTANT,
                "publishedAt": NULLABLE_INSTANT,
                "failureReason": NULLABLE_STRING,
            }
        ),
        "BatchRequest": _object(
            {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": settings.batch_publish_max,
                    "items": _ref("PublishRequest"),
                }
            }
        ),
        "BatchResult": _object(
            {
                "results": {
                    "type": "array",
                    "items": {
                        "oneOf": [
                            _object(
                                {
                                    "index": INTEGER,
                                    "eventId": STRING,
                                    "status": {"const": Status.PUBLISHED.value},
                                    "topic": STRING,
                                    "partition": INTEGER,
                                    "offset": INTEGER,
                                }
                            ),
                            _object(
                                {
                                    "index": INTEGER,
                                    "status": {"const": "FAILED"},
                                    "code": STRING,
                                    "message": STRING,
                                    "details": {"type": ["object", "null"]},
                                }
                            ),
                        ]
                    },
                }
            }
        ),
        "CategoryStats": _object(
            {
                "category": STRING,
                "itemCount": INTEGER,
                "totalPrice": INTEGER,
                "averagePrice": {"type": "number"},
                "minPrice": {"type": ["integer", "null"]},
                "maxPrice": {"type": ["integer", "null"]},
                "soldCount": INTEGER,
                "soldAmount": INTEGER,
            }
        ),
        "Categories": _object({"categories": {"type": "array", "items": _ref("CategoryStats")}}),
        "CategoryHourly": _object(
            {
                "category": STRING,
                "windows": {
                    "type": "array",
                    "items": _object({**window, "itemCount": INTEGER}),
                },
            }
        ),
        "SellerSales": {
            "description": "feeAmount + netAmount = grossAmount; an unknown seller has zeros.",
            **_object(
                {
                    "sellerId": STRING,
                    "salesCount": INTEGER,
                    "grossAmount": INTEGER,
                    "feeAmount": INTEGER,
                    "netAmount": INTEGER,
                    "lastSaleAt": NULLABLE_INSTANT,
                }
            ),
        },
        "PaymentsDaily": _object(
            {
                "currency": STRING,
                "days": {
                    "type": "array",
                    "items": _object({**window, "paymentCount": INTEGER, "totalAmount": INTEGER}),
                },
            }
        ),
        "RegionNewUsers": _object(
            {
                "region": STRING,
                "days": {"type": "array", "items": _object({**window, "newUsers": INTEGER})},
            }
        ),
        "DeadLetter": _object(
            {
                "topic": STRING,
                "partition": INTEGER,
                "offset": INTEGER,
                "timestamp": INSTANT,
                "key": NULLABLE_STRING,
                "headers": {"type": "object", "additionalProperties": NULLABLE_STRING},
            }
        ),
        "DeadLetterMessages": _object(
            {
                "topic": STRING,
                "total": INTEGER,
                "messages": {
                    "type": "array",
                    "items": {
                        "allOf": [
                            _ref("DeadLetter"),
                            _object(
                                {
                                    "value": {
                                        "description": "The Avro envelope, null if undecodable"
                                    },
                                    "valueBase64": NULLABLE_STRING,
                                    "redriven": {"type": "boolean"},
                                }
                            ),
                        ]
                    },
                },
            }
        ),
        "RedriveRequest": {
            "description": "Filters; {} redrives the whole topic. An unknown field is a 400.",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "partition": {"type": "integer", "minimum": 0, "maximum": LIMITS["partition"]},
                "offset": {"type": "integer", "minimum": 0, "maximum": LIMITS["offset"]},
                "since": INSTANT,
                "until": INSTANT,
                "exceptionClass": STRING,
                "dryRun": {"type": "boolean"},
            },
        },
        "RedriveReport": _object(
            {
                "dryRun": {"type": "boolean"},
                "selected": INTEGER,
                "redriven": INTEGER,
                "alreadyRedriven": INTEGER,
                "messages": {
                    "type": "array",
                    "items": _object(
                        {
                            "partition": INTEGER,
                            "offset": INTEGER,
                            "exceptionClass": NULLABLE_STRING,
                            "failedAt": NULLABLE_STRING,
                            "status": {
                                "type": "string",
                                "enum": ["REDRIVEN", "ALREADY_REDRIVEN", "WOULD_REDRIVE"],
                            },
                            "target": {
                                "oneOf": [
                                    {"type": "null"},
                                    _object(
                                        {"topic": STRING, "partition": INTEGER, "offset": INTEGER}
                                    ),
                                ]
                            },
                        }
                    ),
                },
            }
        ),
        "Health": _object(
            {
                "status": {"type": "string", "enum": ["UP", "DOWN"]},
                "components": {
                    "type": "object",
                    "additionalProperties": _object(
                        {
                            "status": {"type": "string", "enum": ["UP", "DOWN"]},
                            "details": {"type": "object"},
                        }
                    ),
                },
            }
        ),
        "MonitoringDeadLetters": _object(
            {
                "topics": {
                    "type": "object",
                    "additionalProperties": _object({"count": INTEGER}),
                },
                "recent": {"type": "array", "items": _ref("DeadLetter")},
            }
        ),
        "Stats": _object(
            {
                "sampledAt": INSTANT,
                "worker": {"type": "object"},
                "topics": {"type": "object"},
                "lag": {"type": "array", "items": {"type": "object"}},
                "eventStore": {"type": "object"},
            }
        ),
    }


_ERRORS = {
    400: "Bad input; `details.field` names the field",
    401: "No valid bearer token",
    403: "A plain API token on an admin call",
    404: "Unknown resource",
    413: "Body over KARROT_MAX_BODY_BYTES (or a batch over KARROT_BATCH_PUBLISH_MAX)",
    503: "A dependency (Kafka, PostgreSQL, the registry, a peer worker) is down, or start-up runs",
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _responses(ok: dict[int, Schema], errors: tuple[int, ...]) -> dict[str, Schema]:
    out = {str(status): response for status, response in ok.items()}
    for status in errors:
        out[str(status)] = _json(_ref("ErrorResponse"), _ERRORS[status])
    return out


def _path_parameter(name: str, description: str, **schema: Any) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", **schema},
    }


TRACE_HEADERS: list[Schema] = [
    {
        "name": "traceparent",
        "in": "header",
        "required": False,
        "description": "W3C trace context; put on the produced record. Absent or malformed:"
        " a new trace is started.",
        "schema": {"type": "string"},
    },
    {
        "name": "tracestate",
        "in": "header",
        "required": False,
        "description": "W3C trace state, kept with a valid traceparent.",
        "schema": {"type": "string"},
    },
]
OPEN: list[Schema] = []  # an operation's `security: []`: no token needed


def _operation(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {"summary": summary, "responses": responses, **extra}


def _paths() -> dict[str, Schema]:
    category = _path_parameter("category", "URL-encoded UTF-8, e.g. %EB%94%94... for 디지털기기")
    dlq_topic = _path_parameter("topic", "A dead-letter topic", enum=list(DEAD_LETTER_TOPICS))
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": LIST_MAX_LIMIT},
    }
    instants = [
        {"name": name, "in": "query", "required": False, "schema": INSTANT}
        for name in ("since", "until")
    ]
    exception_class = {"name": "exceptionClass", "in": "query", "required": False, "schema": STRING}
    keyed = (400, 401, 404, 503)
    return {
        "/api/v1/events": {
            "post": _operation(
                "Publish an event: validated, stored CREATED, produced, then PUBLISHED",
                _responses({201: _json(_ref("Published"), "Published")}, (400, 401, 413, 503)),
                parameters=TRACE_HEADERS,
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": _ref("PublishRequest")}},
                },
            )
        },
        "/api/v1/events/batch": {
            "post": _operation(
                "Publish many events; a result per event in request order",
                _responses(
                    {
                        200: _json(_ref("BatchResult"), "Every event published"),
                        207: _json(_ref("BatchResult"), "Some published, some failed"),
                        422: _json(_ref("BatchResult"), "None published"),
                    },
                    (400, 401, 413, 503),
                ),
                parameters=TRACE_HEADERS,
                requestBody={"required": True, "content": {JSON: {"schema": _ref("BatchRequest")}}},
            )
        },
        "/api/v1/events/{eventId}": {
            "get": _operation(
                "An event's status: CREATED, PUBLISHED, PROCESSED or FAILED",
                _responses({200: _json(_ref("StoredEvent"), "The event")}, keyed),
                parameters=[_path_parameter("eventId", "The event's id")],
                operationId="getEvent",
            )
        },
        "/api/v1/categories": {
            "get": _operation(
                "Every category's aggregates",
                _responses({200: _json(_ref("Categories"), "All categories")}, (401, 503)),
            )
        },
        "/api/v1/categories/{category}": {
            "get": _operation(
                "One category's aggregates (zero counts for one never seen)",
                _responses({200: _json(_ref("CategoryStats"), "The category")}, keyed),
                parameters=[category],
            )
        },
        "/api/v1/categories/{category}/hourly": {
            "get": _operation(
                "Listings per hour, the last seven days, oldest first",
                _responses({200: _json(_ref("CategoryHourly"), "Hourly windows")}, keyed),
                parameters=[category],
            )
        },
        "/api/v1/sellers/{sellerId}/sales": {
            "get": _operation(
                "A seller's completed sales and settlement",
                _responses({200: _json(_ref("SellerSales"), "The seller")}, keyed),
                parameters=[_path_parameter("sellerId", "The seller's id")],
            )
        },
        "/api/v1/payments/daily": {
            "get": _operation(
                "Completed payment volume per UTC day, the last 30 days",
                _responses({200: _json(_ref("PaymentsDaily"), "Daily volume")}, (401, 503)),
            )
        },
        "/api/v1/regions/{region}/new-users": {
            "get": _operation(
                "New users per UTC day in a region, the last 30 days",
                _responses({200: _json(_ref("RegionNewUsers"), "Daily new users")}, keyed),
                parameters=[_path_parameter("region", "URL-encoded UTF-8 region name")],
            )
        },
        "/api/v1/dlq/{topic}/messages": {
            "get": _operation(
                "A dead-letter topic's letters matching the filters, newest first",
                _responses({200: _json(_ref("DeadLetterMessages"), "The letters")}, keyed),
                parameters=[dlq_topic, limit, *instants, exception_class],
            )
        },
        "/api/v1/dlq/{topic}/redrive": {
            "post": _operation(
                "Redrive the selected letters to their original topic, each at most once (admin)",
                _responses(
                    {200: _json(_ref("RedriveReport"), "What was (or would be) redriven")},
                    (400, 401, 403, 404, 413, 503),
                ),
                parameters=[dlq_topic],
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": _ref("RedriveRequest")}},
                },
            )
        },
        "/api/v1/monitoring/health": {
            "get": _operation(
                "Health of broker, registry, database, pipeline, tables and commits (open)",
                {
                    "200": _json(_ref("Health"), "Every component UP"),
                    "503": _json(_ref("Health"), "A component DOWN"),
                },
                security=OPEN,
            )
        },
        "/api/v1/monitoring/ready": {
            "get": _operation(
                "Readiness: started, assignment taken, its tables recovered; no dependency probed"
                " (open)",
                {
                    "200": _json(_ref("Health"), "Ready"),
                    "503": _json(_ref("Health"), "Starting, rebalancing or recovering"),
                },
                security=OPEN,
            )
        },
        "/api/v1/monitoring/dlq": {
            "get": _operation(
                "Counts per dead-letter topic and the latest letters (open)",
                _responses(
                    {200: _json(_ref("MonitoringDeadLetters"), "Counts and letters")}, (400, 503)
                ),
                parameters=[{**limit, "schema": {"type": "integer", "minimum": 0, "maximum": 100}}],
                security=OPEN,
            )
        },
        "/api/v1/monitoring/stats": {
            "get": _operation(
                "This worker's counters, consumer lag and event-store counts (open)",
                {"200": _json(_ref("Stats"), "Counters")},
                security=OPEN,
            )
        },
        OPENAPI_PATH: {
            "get": _operation(
                "This document (open)",
                {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                security=OPEN,
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus text exposition: karrot_* and faust_* metrics (open)",
                {
                    "200": {
                        "description": "Metrics",
                        "content": {"text/plain": {"schema": STRING}},
                    }
                },
                security=OPEN,
            )
        },
        "/console": {
            "get": _operation(
                "The operator console's page (open; it asks for a token itself)",
                {"200": {"description": "HTML", "content": {"text/html": {"schema": STRING}}}},
                security=OPEN,
            )
        },
        "/console/{name}": {
            "get": _operation(
                "The console's stylesheet and script",
                {
                    "200": {
                        "description": "The asset",
                        "content": {
                            "text/html": {"schema": STRING},
                            "text/css": {"schema": STRING},
                            "text/javascript": {"schema": STRING},
                        },
                    },
                    "404": {
                        "description": "No such asset",
                        "content": {"text/plain": {"schema": STRING}},
                    },
                },
                parameters=[
                    _path_parameter("name", "An asset of the console", examples=sorted(ASSETS))
                ],
                security=OPEN,
            )
        },
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
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
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(settings),
        },
    }


class OpenApiView(ApiView):
    """``GET /api/v1/openapi.json``: open, so clients and generators can fetch it."""

    async def get(self, request: web.Request) -> web.StreamResponse:
        return json_response(openapi_document(self.resources.settings))
