"""OTLP/HTTP export of registration and attempt spans with the OpenTelemetry SDK.

Imported only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (``tasks_server.tracing``); the SDK
is the optional extra ``tracing``. The provider is the app's own, never the global one. Spans
leave through a ``BatchSpanProcessor`` (its own thread), so ending one on the event loop only
queues it; the SDK's other variables apply as usual (``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_BSP_*``…).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from tasks_server import __version__
from tasks_server.tracing import Attributes


def traces_url(endpoint: str) -> str:
    """The traces URL under a base endpoint, as the OTLP exporter specification builds it."""
    return endpoint.rstrip("/") + "/v1/traces"


def _context(traceparent: str | None) -> Context:
    if traceparent is None:
        return Context()  # a new trace
    parent = SpanContext(
        trace_id=int(traceparent[3:35], 16),
        span_id=int(traceparent[36:52], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(traceparent[53:55], 16)),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent), Context())


class _Span:
    __slots__ = ("_span", "traceparent")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        context = span.get_span_context()
        self.traceparent = (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
        )

    def end(self, attributes: Attributes, *, error: bool = False) -> None:
        self._span.set_attributes(attributes)
        if error:
            self._span.set_status(StatusCode.ERROR)
        self._span.end()


class OtlpExporter:
    def __init__(self, endpoint: str) -> None:
        resource = Resource.create({SERVICE_NAME: "tasks-server", SERVICE_VERSION: __version__})
        self._provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=traces_url(endpoint))
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("tasks_server", __version__)

    def start(self, name: str, parent: str | None, *, client: bool) -> _Span:
        kind = SpanKind.CLIENT if client else SpanKind.SERVER
        return _Span(self._tracer.start_span(name, _context(parent), kind))

    def shutdown(self) -> None:
        self._provider.shutdown()
