"""End to end over Kafka TLS: every service connects to the broker's TLS listener as its own
principal (User:CN=<service>) with only the ACLs declared in lienthong_kit.kafka_access, and
a document still goes from submission to the recipients' inboxes and the adoption report."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_local.kafka_tls import KafkaTls
from lienthong_local.platform import KafkaTlsListener, Platform
from lienthong_local.sample import sample_units
from lienthong_testing.callers import OBSERVER, REGISTRY_ADMIN, as_unit
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# the same variables as deploy/local/infra.sh, which made the listener and its certificates
DATA = Path(os.environ.get("LIENTHONG_DATA_DIR", ROOT / "deploy" / "local" / ".data"))
TLS_BOOTSTRAP = f"127.0.0.1:{os.environ.get('LIENTHONG_KAFKA_TLS_PORT', '9094')}"
SENDER = "000.00.00.H23"
DEPARTMENT = "000.01.00.H23"
DISTRICT = "000.00.31.H23"


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def platform(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    tls = KafkaTls(DATA / "kafka" / "tls")
    if not (tls.ca.is_file() and _listening(TLS_BOOTSTRAP)):
        message = f"the local Kafka has no TLS listener on {TLS_BOOTSTRAP} (infra-down, infra-up)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    prefix = f"e2etls{uuid.uuid4().hex[:8]}_"
    log_dir = tmp_path_factory.mktemp("platform-tls-logs")
    listener = KafkaTlsListener(TLS_BOOTSTRAP, tls)
    with Platform.start(log_dir=log_dir, prefix=prefix, kafka_tls=listener) as running:
        with grpc.insecure_channel(running.endpoint("routing-service")) as channel:
            for unit in sample_units():
                RoutingServiceStub(channel).UpsertUnit(
                    routing_pb.UpsertUnitRequest(unit=unit), metadata=REGISTRY_ADMIN, timeout=10
                )
        yield running
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def inbox(platform: Platform, unit: str) -> list[str]:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        reply = DocumentServiceStub(channel).ListInbox(
            doc_pb.ListInboxRequest(page_size=200), metadata=as_unit(unit), timeout=10
        )
    return [entry.document.document_id for entry in reply.entries]


def report(platform: Platform, period: str) -> dict[str, rep_pb.AdoptionRow]:
    with grpc.insecure_channel(platform.endpoint("reporting-service")) as channel:
        reply = ReportingServiceStub(channel).GetAdoptionReport(
            rep_pb.GetAdoptionReportRequest(period=period, unit_codes=[SENDER, DISTRICT]),
            metadata=OBSERVER,
            timeout=10,
        )
    return {row.unit_code: row for row in reply.rows}


def test_a_document_flows_with_each_service_as_its_own_kafka_principal(
    platform: Platform,
) -> None:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        document = (
            DocumentServiceStub(channel)
            .SubmitDocument(
                doc_pb.SubmitDocumentRequest(
                    idempotency_key="e2e-tls-1",
                    recipients={"unit_codes": [DEPARTMENT, DISTRICT]},
                    code={"number": "1", "notation": "KH-UBND"},
                    document_type="KH",
                    subject="Kế hoạch chuyển đổi số năm 2027",
                    priority=1,
                    promulgation_date="2026-11-20",
                ),
                metadata=as_unit(SENDER),
                timeout=10,
            )
            .document
        )
    for unit in (DEPARTMENT, DISTRICT):
        eventually_sync(
            lambda unit=unit: inbox(platform, unit), until=lambda ids: document.document_id in ids
        )
    year = document.submitted_at.ToDatetime().strftime("%Y")
    rows = eventually_sync(
        lambda: report(platform, year),
        until=lambda rows: (
            rows[SENDER].outgoing_over_network == 1 and rows[DISTRICT].incoming_over_network == 1
        ),
    )
    assert rows[SENDER].incoming_over_network == 0
    for name, service in platform.processes.items():
        log = service.log_path.read_text(errors="replace")
        assert "AuthorizationFailed" not in log, name
