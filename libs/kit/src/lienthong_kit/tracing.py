"""Traces: OpenTelemetry, with the W3C ``traceparent`` carried on gRPC calls and Kafka records.

The kit does the plumbing, so a service writes nothing for it:

* the server guard (interceptors.py) continues the caller's trace (``traceparent`` metadata)
  in a span per RPC; the producer puts the current trace in each record's headers; the consumer loop
  and topic tails run each handler in a span continuing the producer's trace; log lines
  carry the current ``trace_id``.
* a service calling another service passes the trace on::

      metadata = (("x-lienthong-unit", unit), *outgoing_metadata())
      await stub.GetDocument(request, metadata=metadata)

  (or builds its channel with ``interceptors=[TracingClientInterceptor()]``).

Spans are exported over OTLP/gRPC only when ``LIENTHONG_OTLP_ENDPOINT`` is set; without it
the ids are still made and propagated (they tie log lines together) but no span is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from grpc import aio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "LEGACY_TRACE_HEADER",
    "SpanKind",
    "TracingClientInterceptor",
    "configure_tracing",
    "context_from_headers",
    "context_from_metadata",
    "current_trace_id",
    "flush_tracing",
    "kafka_headers",
    "outgoing_metadata",
    "span",
    "tracer",
]

#: The header this platform used before W3C trace context; still accepted on incoming calls.
LEGACY_TRACE_HEADER = "x-trace-id"

#: Follows whichever provider :func:`configure_tracing` installs, even if created before it.
tracer = trace.get_tracer("lienthong_kit")

_HEX_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_ids = RandomIdGenerator()
_propagator = TraceContextTextMapPropagator()  # W3C traceparent/tracestate, nothing else
_recording = False  # spans are exported: made by the SDK, not the lightweight path


def configure_tracing(service: str, otlp_endpoint: str = "") -> None:
    """Install the process's tracer provider (once: OpenTelemetry allows one per process,
    so a second service started in the same test process shares the first one's)."""
    global _recording
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    _recording = bool(otlp_endpoint)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        # without an exporter nothing is recorded: ids are made and propagated, no more
        sampler=ParentBased(ALWAYS_ON) if otlp_endpoint else ALWAYS_OFF,
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)


def flush_tracing() -> None:
    """Export the spans still buffered (at shutdown)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()


def current_trace_id() -> str:
    """The current trace's id as 32 hex digits, or "" outside any trace."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else ""


@contextmanager
def span(name: str, *, context: Context, kind: SpanKind) -> Iterator[None]:
    """Run the block in a span continuing ``context`` (a new trace if it holds none).

    Without an exporter the span is a bare id pair, made here: the SDK's unsampled span
    costs several times more per RPC and per event, to record nothing."""
    if _recording:
        with tracer.start_as_current_span(
            name, context=context, kind=kind, record_exception=False, set_status_on_exception=False
        ):
            yield
        return
    parent = trace.get_current_span(context).get_span_context()
    trace_id = parent.trace_id if parent.is_valid else _ids.generate_trace_id()
    current = NonRecordingSpan(SpanContext(trace_id, _ids.generate_span_id(), is_remote=False))
    token = otel_context.attach(trace.set_span_in_context(current, context))
    try:
        yield
    finally:
        otel_context.detach(token)


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """gRPC metadata that continues the current trace in the called service."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return tuple(carrier.items())


def kafka_headers() -> list[tuple[str, bytes]]:
    """Kafka record headers that continue the current trace in the record's consumers."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


def context_from_metadata(metadata: Mapping[str, Any]) -> Context:
    """The caller's trace from gRPC metadata; a bare legacy ``x-trace-id`` of 32 hex digits
    is continued too."""
    if "traceparent" in metadata:
        return _propagator.extract(metadata)
    return _continuing(str(metadata.get(LEGACY_TRACE_HEADER) or ""))


def context_from_headers(headers: Sequence[tuple[str, bytes]], trace_id: str = "") -> Context:
    """The producer's trace from a record's headers or, for a record without them (published
    before the headers existed), from the envelope's ``trace_id``."""
    carrier = {key: value.decode(errors="replace") for key, value in headers or ()}
    if "traceparent" in carrier:
        return _propagator.extract(carrier)
    return _continuing(trace_id)


def _continuing(trace_id: str) -> Context:
    """A context whose remote parent has ``trace_id`` (a new span id): empty if it is not
    32 hex digits, so a new trace starts."""
    if not _HEX_TRACE_ID.fullmatch(trace_id) or trace_id == "0" * 32:
        return Context()
    parent = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=_ids.generate_span_id(),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent), Context())


if TYPE_CHECKING:  # the stubs make it generic; the runtime class is not subscriptable
    _UnaryUnary = aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = aio.UnaryUnaryClientInterceptor
    _UnaryStream = aio.UnaryStreamClientInterceptor


class TracingClientInterceptor(_UnaryUnary, _UnaryStream):
    """For a channel to another service: adds :func:`outgoing_metadata` to every call."""

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_trace(client_call_details), request)

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_trace(client_call_details), request)


def _with_trace(details: Any) -> Any:
    return aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout,
        metadata=aio.Metadata(*(details.metadata or ()), *outgoing_metadata()),
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )
