"""Traces across a gRPC call and Kafka, against the real broker: the caller's W3C
``traceparent`` reaches the handler's log lines, the headers of the event it publishes and
the log lines of that event's consumer."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.events.v1.events_pb2 import DocumentSubmitted
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import (
    SignatureServiceServicer,
    SignatureServiceStub,
    add_SignatureServiceServicer_to_server,
)
from lienthong_kit.envelope import EventEnvelope, new_event
from lienthong_kit.kafka import ConsumerSpec, EventProducer, Topics
from lienthong_kit.logs import add_service_and_trace, get_logger
from lienthong_kit.server import Deps, GrpcService, ServiceApp, Wiring
from lienthong_kit.tracing import (
    TracingClientInterceptor,
    context_from_headers,
    current_trace_id,
    kafka_headers,
    outgoing_metadata,
    tracer,
)
from lienthong_testing.callers import open_to_units

OPEN = open_to_units(pb, "SignatureService")
log = get_logger("probe")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
UNIT = ("x-lienthong-unit", "000.00.00.H23")


class PublishingServicer(SignatureServiceServicer):
    """Publishes a ``DocumentSubmitted`` per call, as a service's RPC announcing a change."""

    def __init__(self, producer: EventProducer, topics: Topics) -> None:
        self._producer = producer
        self._topics = topics

    async def GetVerification(
        self, request: pb.GetVerificationRequest, context: Any
    ) -> pb.GetVerificationResponse:
        log.info("probe_publishing", document_id=request.document_id)
        summary = DocumentSummary(document_id=request.document_id)
        envelope = new_event(DocumentSubmitted(document=summary), producer="probe-service")
        await self._producer.publish(
            self._topics.documents, key=request.document_id, envelope=envelope
        )
        return pb.GetVerificationResponse(document_id=request.document_id)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs(processors=[add_service_and_trace]) as captured:
        yield captured


async def test_a_callers_trace_reaches_the_published_event_and_its_consumer(
    start_service: Any, topic_reader: Any, logs: list[dict[str, Any]]
) -> None:
    consumed = asyncio.Event()

    async def on_submitted(envelope: EventEnvelope, _: Any) -> None:
        log.info("probe_consumed", event_id=envelope.event_id)
        consumed.set()

    async def build(deps: Deps[Any]) -> Wiring:
        servicer = PublishingServicer(deps.producer, deps.topics)
        return Wiring(
            services=[
                GrpcService.of(
                    pb, "SignatureService", add_SignatureServiceServicer_to_server, servicer, OPEN
                )
            ],
            consumers=[ConsumerSpec("probe-consumer", [deps.topics.documents], on_submitted)],
        )

    app: ServiceApp[Any] = await start_service("probe-service", build)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        await SignatureServiceStub(channel).GetVerification(
            pb.GetVerificationRequest(document_id="d-1"),
            metadata=(UNIT, ("traceparent", TRACEPARENT)),
        )
    await asyncio.wait_for(consumed.wait(), timeout=60)

    [record] = await topic_reader(app.topics.documents, 1)
    headers = dict(record.headers)
    assert headers["traceparent"].decode().split("-")[1] == TRACE_ID
    lines = {line["event"]: line for line in logs if line["event"].startswith("probe_")}
    assert lines["probe_publishing"]["trace_id"] == TRACE_ID
    assert lines["probe_consumed"]["trace_id"] == TRACE_ID


async def test_a_call_without_a_trace_starts_one(
    start_service: Any, logs: list[dict[str, Any]]
) -> None:
    async def build(deps: Deps[Any]) -> Wiring:
        servicer = PublishingServicer(deps.producer, deps.topics)
        return Wiring(
            services=[
                GrpcService.of(
                    pb, "SignatureService", add_SignatureServiceServicer_to_server, servicer, OPEN
                )
            ]
        )

    app: ServiceApp[Any] = await start_service("probe-service", build)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = SignatureServiceStub(channel)
        for document_id in ("d-1", "d-2"):
            await stub.GetVerification(
                pb.GetVerificationRequest(document_id=document_id), metadata=(UNIT,)
            )
    trace_ids = [line["trace_id"] for line in logs if line["event"] == "probe_publishing"]
    assert len(trace_ids) == 2
    assert all(len(trace_id) == 32 for trace_id in trace_ids)
    assert trace_ids[0] != trace_ids[1]


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((("traceparent", TRACEPARENT),), id="traceparent"),
        pytest.param((("x-trace-id", TRACE_ID),), id="legacy-x-trace-id"),
    ],
)
async def test_the_server_continues_the_callers_trace(
    start_service: Any, logs: list[dict[str, Any]], metadata: tuple[tuple[str, str], ...]
) -> None:
    async def build(deps: Deps[Any]) -> Wiring:
        servicer = PublishingServicer(deps.producer, deps.topics)
        return Wiring(
            services=[
                GrpcService.of(
                    pb, "SignatureService", add_SignatureServiceServicer_to_server, servicer, OPEN
                )
            ]
        )

    app: ServiceApp[Any] = await start_service("probe-service", build)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        await SignatureServiceStub(channel).GetVerification(
            pb.GetVerificationRequest(document_id="d-1"), metadata=(UNIT, *metadata)
        )
    [line] = [line for line in logs if line["event"] == "probe_publishing"]
    assert line["trace_id"] == TRACE_ID


async def test_the_client_interceptor_passes_the_current_trace_on(
    start_service: Any, logs: list[dict[str, Any]]
) -> None:
    async def build(deps: Deps[Any]) -> Wiring:
        servicer = PublishingServicer(deps.producer, deps.topics)
        return Wiring(
            services=[
                GrpcService.of(
                    pb, "SignatureService", add_SignatureServiceServicer_to_server, servicer, OPEN
                )
            ]
        )

    app: ServiceApp[Any] = await start_service("probe-service", build)
    with tracer.start_as_current_span("caller"):
        caller_trace = current_trace_id()
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{app.grpc_port}", interceptors=[TracingClientInterceptor()]
        ) as channel:
            await SignatureServiceStub(channel).GetVerification(
                pb.GetVerificationRequest(document_id="d-1"), metadata=(UNIT,)
            )
    [line] = [line for line in logs if line["event"] == "probe_publishing"]
    assert line["trace_id"] == caller_trace


def test_headers_and_metadata_carry_the_current_trace() -> None:
    with tracer.start_as_current_span("probe"):
        trace_id = current_trace_id()
        headers = kafka_headers()
        metadata = dict(outgoing_metadata())
    assert metadata["traceparent"].split("-")[1] == trace_id
    with tracer.start_as_current_span("consumer", context=context_from_headers(headers)):
        assert current_trace_id() == trace_id


def test_a_record_without_headers_continues_its_envelopes_trace() -> None:
    with tracer.start_as_current_span("consumer", context=context_from_headers([], TRACE_ID)):
        assert current_trace_id() == TRACE_ID
    with tracer.start_as_current_span("consumer", context=context_from_headers([], "not-hex")):
        assert current_trace_id() not in ("", TRACE_ID)


EXPORTING = """
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry import trace
from lienthong_kit.tracing import SpanKind, configure_tracing, context_from_metadata, span
from lienthong_kit.tracing import kafka_headers

configure_tracing("probe-service", "http://127.0.0.1:9")  # nothing listens: never flushed
exported = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exported))
incoming = {"traceparent": "00-%s-00f067aa0ba902b7-01"}
with span("/probe/Call", context=context_from_metadata(incoming), kind=SpanKind.SERVER):
    headers = dict(kafka_headers())
[recorded] = exported.get_finished_spans()
print(recorded.name, format(recorded.context.trace_id, "032x"), headers["traceparent"].decode())
"""


def test_with_an_endpoint_spans_are_recorded_for_export() -> None:
    # a process of its own: OpenTelemetry allows one tracer provider per process
    result = subprocess.run(
        [sys.executable, "-c", EXPORTING % TRACE_ID],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    name, trace_id, traceparent = result.stdout.split()
    assert (name, trace_id) == ("/probe/Call", TRACE_ID)
    assert traceparent.endswith("-01")  # sampled: the next service records it too
