"""W3C trace context picked from headers, started for HTTP, and batch spans linked to records."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from karrot_streams.monitoring import tracing
from karrot_streams.settings import Settings

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero parent id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # v00 has no more
        b"\xff\xfe",
    ],
)
def test_invalid_traceparents_are_refused(value: str | bytes | None) -> None:
    assert tracing.parse_traceparent(value) is None


def test_a_valid_traceparent_and_a_later_version() -> None:
    assert tracing.parse_traceparent(PARENT) == tracing.TraceParent(
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "01"
    )
    later = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes"
    assert tracing.parse_traceparent(later) is not None


def test_trace_headers_picks_them_from_a_header_list() -> None:
    headers = [
        ("original_topic", b"chat-events"),
        ("TraceParent", PARENT.encode()),
        ("tracestate", b"congo=t61rcWkgMzE"),
        ("traceparent", OTHER.encode()),  # a second one: the first wins
    ]
    assert tracing.trace_headers(headers) == [
        ("traceparent", PARENT.encode()),
        ("tracestate", b"congo=t61rcWkgMzE"),
    ]
    assert tracing.trace_headers([("tracestate", b"a=b")]) == []  # state alone means nothing
    assert tracing.trace_headers([("traceparent", b"bad")]) == []
    assert tracing.trace_headers(None) == []


def test_http_keeps_a_valid_context_and_starts_a_trace_otherwise() -> None:
    assert tracing.http_trace_headers(PARENT, "a=b") == [
        ("traceparent", PARENT.encode()),
        ("tracestate", b"a=b"),
    ]
    started = tracing.http_trace_headers("not-a-traceparent", "a=b")
    assert [name for name, _ in started] == ["traceparent"]  # the state of no trace is dropped
    fresh = tracing.parse_traceparent(started[0][1])
    assert fresh is not None and fresh.flags == "01"
    assert tracing.http_trace_headers(None, None) != started  # new ids every time


def test_batch_span_is_a_no_op_when_export_is_off() -> None:
    assert not tracing.setup(Settings())
    assert not tracing.enabled()
    with tracing.batch_span("batch", [[("traceparent", PARENT.encode())]]) as span:
        assert not span.is_recording()


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.setup(Settings(app_id="karrot-test"), SimpleSpanProcessor(exporter))
    yield exporter
    tracing.shutdown()


def test_one_span_per_batch_linked_to_each_records_trace(exporter: InMemorySpanExporter) -> None:
    batch = [
        [("traceparent", PARENT.encode()), ("tracestate", b"congo=t61rcWkgMzE")],
        [("key", b"no trace here")],
        [("traceparent", OTHER.encode())],
        None,
    ]
    with tracing.batch_span("karrot.pipeline.batch", batch) as span:
        assert span.is_recording()
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "karrot.pipeline.batch"
    assert finished.attributes is not None
    assert finished.attributes["messaging.batch.message_count"] == 4
    assert finished.resource.attributes["service.name"] == "karrot-test"
    links = [
        (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in finished.links
    ]
    assert links == [
        ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
        ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
    ]
    link_attributes = [link.attributes for link in finished.links]
    assert [a["messaging.batch.index"] for a in link_attributes if a is not None] == [0, 2]
    assert finished.links[0].context.trace_state.get("congo") == "t61rcWkgMzE"
    assert finished.links[0].context.is_remote
    # The batch's span starts a trace of its own: a batch has many parents.
    assert finished.parent is None


def test_an_otlp_endpoint_turns_export_on() -> None:
    try:
        assert tracing.setup(Settings(otel_endpoint="http://127.0.0.1:9/v1/traces"))
        assert tracing.enabled()
    finally:
        tracing.shutdown()
    assert not tracing.enabled()
