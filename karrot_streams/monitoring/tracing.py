"""W3C trace context on Kafka records, and optional OpenTelemetry spans of the pipeline's batches.

Trace context travels as the record headers ``traceparent`` and ``tracestate``
(https://www.w3.org/TR/trace-context/): :func:`trace_headers` picks them from a record's headers so
the records it causes carry them on; :func:`http_trace_headers` takes them from an HTTP request,
or starts a new trace.

Export is off by default. With ``KARROT_OTEL_ENDPOINT`` set (an OTLP/HTTP traces URL such as
``http://collector:4318/v1/traces``), :func:`batch_span` records one span per batch, linked to the
trace of each record in it (a batch has many parents, so links rather than a parent). Spans are
exported from the SDK's batch processor thread: nothing on the event loop waits for the network.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, TraceFlags, TraceState

from karrot_streams.settings import Settings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
HeaderList = list[tuple[str, bytes]]

# version-traceid-parentid-flags, lower-case hex. A later version may append fields after a dash.
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
#: The W3C limit for tracestate: 32 list members of at most 256 characters each.
MAX_TRACESTATE = 32 * 257


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str
    span_id: str
    flags: str

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The traceparent's fields, or None when it is missing or not valid W3C trace context."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id = match["version"], match["trace_id"], match["span_id"]
    if version == "ff" or (version == "00" and match["rest"] is not None):
        return None
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return TraceParent(trace_id, span_id, match["flags"])


def new_traceparent() -> TraceParent:
    """A new trace (random ids), sampled."""
    return TraceParent(secrets.token_hex(16), secrets.token_hex(8), "01")


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def trace_headers(headers: Iterable[tuple[str, bytes | str | None]] | None) -> HeaderList:
    """``traceparent`` (the first valid one) and its ``tracestate`` from a record's headers.

    Empty when there is no valid traceparent: a tracestate alone means nothing (W3C).
    """
    parent: TraceParent | None = None
    state: str | None = None
    for name, value in headers or ():
        key = name.lower()
        if key == TRACEPARENT and parent is None:
            parent = parse_traceparent(value)
        elif key == TRACESTATE and state is None:
            state = _text(value)
    if parent is None:
        return []
    out: HeaderList = [(TRACEPARENT, parent.header().encode("ascii"))]
    if state is not None and state.strip() and len(state) <= MAX_TRACESTATE:
        out.append((TRACESTATE, state.strip().encode("latin-1")))
    return out


def http_trace_headers(traceparent: str | None, tracestate: str | None) -> HeaderList:
    """The record headers for a request's trace context, or for a new trace when it has none."""
    picked = trace_headers([(TRACEPARENT, traceparent), (TRACESTATE, tracestate)])
    if picked:
        return picked
    return [(TRACEPARENT, new_traceparent().header().encode("ascii"))]


# ----------------------------------------------------------------------------------------------
# optional OpenTelemetry export
# ----------------------------------------------------------------------------------------------

_provider: TracerProvider | None = None


def setup(settings: Settings, processor: SpanProcessor | None = None) -> bool:
    """Turn span export on when ``settings.otel_endpoint`` is set (or a processor is given, as
    tests do); returns whether it is on. Process-wide, like the SDK's providers."""
    global _provider  # noqa: PLW0603  one tracer provider per process
    shutdown()
    if processor is None and settings.otel_endpoint is None:
        return False
    if processor is None:
        processor = BatchSpanProcessor(_otlp_exporter(settings.otel_endpoint or ""))
    provider = TracerProvider(resource=Resource.create({"service.name": settings.app_id}))
    provider.add_span_processor(processor)
    _provider = provider
    log.info("OpenTelemetry: exporting batch spans to %s", settings.otel_endpoint or processor)
    return True


def _otlp_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,  # imported only when export is on: it loads protobuf
    )

    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint)
    return exporter


def shutdown() -> None:
    """Flush and stop export (the worker's shutdown, or a test's end)."""
    global _provider  # noqa: PLW0603
    if _provider is not None:
        _provider.shutdown()
    _provider = None


def enabled() -> bool:
    return _provider is not None


def _span_context(headers: Iterable[tuple[str, bytes | str | None]] | None) -> SpanContext | None:
    picked = dict(trace_headers(headers))
    parent = parse_traceparent(picked.get(TRACEPARENT))
    if parent is None:
        return None
    state = picked.get(TRACESTATE)
    try:
        trace_state = TraceState.from_header([state.decode("latin-1")]) if state else None
    except ValueError:
        trace_state = None
    return SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(parent.flags, 16) & TraceFlags.SAMPLED),
        trace_state=trace_state,
    )


@contextmanager
def batch_span(
    name: str, headers_of_records: Sequence[Iterable[tuple[str, bytes | str | None]] | None]
) -> Iterator[Span]:
    """One span around a batch, linked to each record's trace; a no-op span when export is off.

    ``headers_of_records`` holds each record's headers (a record without trace context adds no
    link). The span is the current span inside the block, so spans made there are its children.
    """
    provider = _provider
    if provider is None:
        yield NonRecordingSpan(SpanContext(0, 0, is_remote=False))
        return
    links = [
        Link(context, {"messaging.batch.index": index})
        for index, headers in enumerate(headers_of_records)
        if (context := _span_context(headers)) is not None
    ]
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span(
        name,
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={"messaging.batch.message_count": len(headers_of_records)},
    ) as span:
        yield span
