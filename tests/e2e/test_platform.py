"""End to end: the five services as separate processes on the real broker and store.

One platform for the module (its own topic prefix and databases); every check polls with a
deadline, none sleeps.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.notification.v1 import notification_service_pb2 as note_pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong_kit.kafka import Topics
from lienthong_local.platform import SERVICES, Platform
from lienthong_local.run import load_sample_registry
from lienthong_testing.callers import OBSERVER, with_default_identity
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

SENDER = "000.00.00.H23"  # the provincial People's Committee
DEPARTMENT = "000.01.00.H23"
DISTRICT = "000.00.31.H23"
EXPECTED_SERVICES = {
    "document-service": "lienthong.document.v1.DocumentService",
    "routing-service": "lienthong.routing.v1.RoutingService",
    "signature-service": "lienthong.signature.v1.SignatureService",
    "notification-service": "lienthong.notification.v1.NotificationService",
    "reporting-service": "lienthong.reporting.v1.ReportingService",
}


@pytest.fixture(scope="module")
def platform(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    prefix = f"e2e{uuid.uuid4().hex[:8]}_"
    log_dir = tmp_path_factory.mktemp("platform-logs")
    with Platform.start(log_dir=log_dir, prefix=prefix) as running:
        load_sample_registry(running.endpoint("routing-service"))
        yield running
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def as_unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


def channel(platform: Platform, name: str) -> grpc.Channel:
    # calls that name no unit are an observer's (the registry, the province's table)
    return with_default_identity(grpc.insecure_channel(platform.endpoint(name)), OBSERVER)


def submit(platform: Platform, recipients: list[str], number: str) -> doc_pb.SubmitDocumentResponse:
    with channel(platform, "document-service") as ch:
        reply: doc_pb.SubmitDocumentResponse = DocumentServiceStub(ch).SubmitDocument(
            doc_pb.SubmitDocumentRequest(
                idempotency_key=f"e2e-{number}",
                recipients={"unit_codes": recipients},
                code={"number": number, "notation": "KH-UBND"},
                document_type="KH",
                subject="Kế hoạch chuyển đổi số năm 2027",
                priority=1,
                promulgation_date="2026-11-20",
            ),
            metadata=as_unit(SENDER),
            timeout=10,
        )
        return reply


def inbox(platform: Platform, unit: str) -> list[str]:
    with channel(platform, "document-service") as ch:
        reply = DocumentServiceStub(ch).ListInbox(
            doc_pb.ListInboxRequest(page_size=200), metadata=as_unit(unit), timeout=10
        )
    return [entry.document.document_id for entry in reply.entries]


def report(platform: Platform, period: str, units: list[str]) -> dict[str, rep_pb.AdoptionRow]:
    with channel(platform, "reporting-service") as ch:
        reply = ReportingServiceStub(ch).GetAdoptionReport(
            rep_pb.GetAdoptionReportRequest(period=period, unit_codes=units), timeout=10
        )
    return {row.unit_code: row for row in reply.rows}


def test_a_document_reaches_two_inboxes_and_the_adoption_counts(platform: Platform) -> None:
    units = [SENDER, DEPARTMENT, DISTRICT]
    before = report(platform, "2026", units)
    document = submit(platform, [DEPARTMENT, DISTRICT], "101").document
    for unit in (DEPARTMENT, DISTRICT):
        eventually_sync(
            lambda unit=unit: inbox(platform, unit), until=lambda ids: document.document_id in ids
        )
    year = document.submitted_at.ToDatetime().strftime("%Y")
    after = eventually_sync(
        lambda: report(platform, year, units),
        until=lambda rows: (
            rows[SENDER].outgoing_over_network == before[SENDER].outgoing_over_network + 1
            and rows[DISTRICT].incoming_over_network == before[DISTRICT].incoming_over_network + 1
        ),
    )
    assert after[DEPARTMENT].incoming_over_network == before[DEPARTMENT].incoming_over_network + 1
    assert after[SENDER].incoming_over_network == before[SENDER].incoming_over_network


def test_the_recipient_is_notified_in_app(platform: Platform) -> None:
    document = submit(platform, [DEPARTMENT], "102").document

    def notices() -> list[str]:
        with channel(platform, "notification-service") as ch:
            reply = NotificationServiceStub(ch).ListNotifications(
                note_pb.ListNotificationsRequest(), metadata=as_unit(DEPARTMENT), timeout=10
            )
        return [n.document_id for n in reply.notifications]

    eventually_sync(notices, until=lambda ids: document.document_id in ids)


def test_an_unknown_recipient_bounces_back_to_the_sender(platform: Platform) -> None:
    document = submit(platform, [DEPARTMENT, "999.99.99.H99"], "103").document

    def states() -> dict[str, doc_pb.RecipientState]:
        with channel(platform, "document-service") as ch:
            reply = DocumentServiceStub(ch).GetDocument(
                doc_pb.GetDocumentRequest(document_id=document.document_id),
                metadata=as_unit(SENDER),
                timeout=10,
            )
        return {state.recipient_code: state for state in reply.recipient_states}

    result = eventually_sync(states, until=lambda s: len(s) == 2)
    assert result[DEPARTMENT].status_code == "01"
    assert result["999.99.99.H99"].bounce_reason == (
        "unknown recipient 999.99.99.H99: no such unit in the registry; it is outside the"
        " province: register it as an external agency to reach it through the national axis"
    )


def test_each_service_is_visible_through_reflection(platform: Platform) -> None:
    for name, service in EXPECTED_SERVICES.items():
        with channel(platform, name) as ch:
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            replies = list(
                stub.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
                )
            )
        listed = {s.name for s in replies[0].list_services_response.service}
        assert {
            service,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        } <= listed


def test_each_metrics_endpoint_serves_valid_prometheus_text(platform: Platform) -> None:
    promtool = shutil.which("promtool")
    for name, service in platform.processes.items():
        url = f"http://127.0.0.1:{service.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        names = {family.name for family in text_string_to_metric_families(body)}
        assert "lienthong_build_info" in names, name
        if promtool:
            check = subprocess.run(
                [promtool, "check", "metrics"],
                input=body,
                capture_output=True,
                text=True,
                check=False,
            )
            assert check.returncode == 0, f"{name}: {check.stdout}{check.stderr}"


async def test_a_malformed_event_is_dead_lettered_and_the_flow_goes_on(platform: Platform) -> None:
    topics = Topics(platform.env["LIENTHONG_TOPIC_PREFIX"])
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9092")
    await producer.start()
    try:
        await producer.send_and_wait(topics.documents, b"\x08\x96\x01 garbage", key=b"bad")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topics.dlq(topics.documents),
        bootstrap_servers="127.0.0.1:9092",
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    groups: set[str] = set()
    try:
        while {"signature-service", "reporting-service"} - {
            g.removeprefix(topics.prefix) for g in groups
        }:
            batch = await consumer.getmany(timeout_ms=30_000)
            assert batch, f"no dead-letter record within 30 s (got {groups})"
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers)
                    assert headers["lienthong-dlq-reason"].decode()
                    groups.add(headers["lienthong-consumer-group"].decode())
    finally:
        await consumer.stop()
    document = submit(platform, [DISTRICT], "104").document
    eventually_sync(
        lambda: inbox(platform, DISTRICT), until=lambda ids: document.document_id in ids
    )


def test_sigterm_shuts_a_service_down_gracefully(platform: Platform) -> None:
    service = platform.processes["signature-service"]
    assert platform.stop("signature-service", signal.SIGTERM) == 0
    events = [json.loads(line)["event"] for line in _json_lines(service.log_path)]
    assert events.index("service_stopping") < events.index("service_stopped")
    platform.launch("signature-service", service.grpc_port, service.metrics_port)
    platform.wait_serving(60, names=("signature-service",))
    assert (
        platform.processes["signature-service"].health() == health_pb2.HealthCheckResponse.SERVING
    )
    document = submit(platform, [DEPARTMENT], "105").document
    eventually_sync(
        lambda: inbox(platform, DEPARTMENT), until=lambda ids: document.document_id in ids
    )


def _json_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("{")]


def test_all_five_services_ran(platform: Platform) -> None:
    assert set(platform.processes) == set(SERVICES)
    for name in SERVICES:
        assert platform.processes[name].health() == health_pb2.HealthCheckResponse.SERVING, name
