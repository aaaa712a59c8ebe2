"""End to end in the secure mode (``make run-secure``'s platform): mutual TLS on every gRPC port
with the callers' client certificates and no development header, the services calling one
another with their own certificates, and Kafka over TLS as each service's own principal with
only its declared ACLs.

One signed document goes through all of it: submitted by a unit -> verified (signature-service
fetches the PDF from document-service with its client certificate) -> routed -> in the
recipients' inboxes (also through the edXML gateway over HTTPS, which calls document-service
with its certificate) -> acknowledged -> tracked by the sender -> counted in the report ->
the audit log verified against its signed checkpoints (read back from Kafka over TLS).
"""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lienthong.common.v1.common_pb2 import Verdict
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong.signature.v1 import signature_service_pb2 as sig_pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_local.grpc_tls import GrpcTls
from lienthong_local.platform import KafkaTlsListener, Platform, free_port
from lienthong_local.run import local_platform
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.pki import LocalPki, documents, running_pki
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

SENDER = "000.00.00.H43"
DEPARTMENT = "000.01.00.H43"
COMMUNE = "000.00.101.H43"
OBSERVER = "operator/observer/e2e"


def unit(code: str) -> str:
    return f"unit/{code}"


@dataclass
class Secure:
    platform: Platform
    tls: GrpcTls
    gateway: str  # https://127.0.0.1:<port>

    def documents(self, identity: str) -> tuple[grpc.Channel, DocumentServiceStub]:
        channel = self.platform.channel("document-service", identity)
        return channel, DocumentServiceStub(channel)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPki]:
    with running_pki(tmp_path_factory.mktemp("secure-pki")) as running:
        yield running


def audit_key(folder: Path) -> Path:
    """document-service's checkpoint signing key, made for this run (never committed)."""
    path = folder / "audit.key.pem"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(scope="module")
def secure(
    infra: None, pki: LocalPki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secure]:
    kafka = KafkaTlsListener.local()
    if kafka is None:
        message = "the local Kafka has no TLS listener (infra-down, infra-up)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("secure")
    tls = GrpcTls.open(folder / "grpc-tls")
    prefix = f"e2esec{uuid.uuid4().hex[:8]}_"
    http_port = free_port()
    env = {
        "LIENTHONG_SIGNATURE_TRUST_ANCHORS": str(pki.anchors_file),
        "LIENTHONG_SIGNATURE_INTERMEDIATES": str(pki.intermediates_file),
        "LIENTHONG_SIGNATURE_WORKERS": "1",
        # the real policy: only signed documents go through
        "LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED": "false",
        "LIENTHONG_AUDIT_SIGNING_KEY": str(audit_key(folder)),
        "LIENTHONG_AUDIT_CHECKPOINT_SECONDS": "0.5",
        "LIENTHONG_GATEWAY_HTTP_PORT": str(http_port),
    }
    with local_platform(
        log_dir=folder / "logs",
        environ={},
        prefix=prefix,
        fixed_ports=False,
        extra_env=env,
        grpc_tls=tls,
        kafka_tls=kafka,
        # signature-service's validation worker may take a minute to start on a loaded machine
        timeout=240,
    ) as platform:
        yield Secure(platform, tls, f"https://127.0.0.1:{http_port}")
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def submit(secure: Secure, files: list[tuple[str, bytes]], recipients: list[str]) -> str:
    channel, stub = secure.documents(unit(SENDER))
    with channel:
        ids = []
        for name, content in files:
            parts = [
                doc_pb.UploadAttachmentRequest(
                    header=doc_pb.AttachmentHeader(name=name, mime_type="application/pdf")
                ),
                doc_pb.UploadAttachmentRequest(chunk=content),
            ]
            ids.append(stub.UploadAttachment(iter(parts), timeout=10).attachment.attachment_id)
        submitted = stub.SubmitDocument(
            doc_pb.SubmitDocumentRequest(
                idempotency_key="e2e-secure-1",
                recipients={"unit_codes": recipients},
                code={"number": "301", "notation": "QĐ-UBND"},
                document_type="QĐ",
                subject="Quyết định về việc phê duyệt kế hoạch chuyển đổi số",
                priority=1,
                promulgation_date="2026-11-20",
                attachment_ids=ids,
            ),
            timeout=10,
        )
    return submitted.document.document_id


def inbox(secure: Secure, code: str) -> dict[str, doc_pb.InboxEntry]:
    channel, stub = secure.documents(unit(code))
    with channel:
        reply = stub.ListInbox(doc_pb.ListInboxRequest(page_size=200), timeout=10)
    return {entry.document.document_id: entry for entry in reply.entries}


def track(secure: Secure, document_id: str) -> dict[str, doc_pb.RecipientTrack]:
    channel, stub = secure.documents(unit(SENDER))
    with channel:
        reply = stub.TrackDocument(doc_pb.TrackDocumentRequest(document_id=document_id), timeout=10)
    return {r.recipient_code: r for r in reply.recipients}


def report(secure: Secure, period: str) -> dict[str, rep_pb.AdoptionRow]:
    with secure.platform.channel("reporting-service", OBSERVER) as channel:
        reply = ReportingServiceStub(channel).GetAdoptionReport(
            rep_pb.GetAdoptionReportRequest(period=period, unit_codes=[SENDER, DEPARTMENT]),
            timeout=10,
        )
    return {row.unit_code: row for row in reply.rows}


def pending_through_the_gateway(secure: Secure, code: str) -> list[str]:
    client = secure.tls.client(unit(code))
    context = ssl.create_default_context(cafile=str(secure.tls.ca_path))
    context.load_cert_chain(client.cert_path, client.key_path)
    with httpx.Client(verify=context, timeout=30) as http:
        reply = http.get(f"{secure.gateway}/v1/documents/pending")
    assert reply.status_code == 200, reply.text
    ids: list[str] = reply.json()["ids"]
    return ids


def test_a_signed_document_goes_through_every_service_over_mtls_and_kafka_tls(
    secure: Secure, pki: LocalPki
) -> None:
    files = documents(pki)["person-then-organisation"]
    document_id = submit(secure, files, [DEPARTMENT, COMMUNE])

    # routed to both inboxes: verified first, with the PDF fetched over mTLS
    for code in (DEPARTMENT, COMMUNE):
        eventually_sync(lambda code=code: inbox(secure, code), until=lambda got: document_id in got)
    with secure.platform.channel("signature-service", unit(SENDER)) as channel:
        verification = SignatureServiceStub(channel).GetVerification(
            sig_pb.GetVerificationRequest(document_id=document_id), timeout=10
        )
    assert verification.verdict == Verdict.VERDICT_ACCEPTED, verification
    assert verification.personal_signature_valid
    assert verification.organisation_signature_valid

    # the edXML gateway lists it for the commune, calling document-service as itself
    assert document_id in pending_through_the_gateway(secure, COMMUNE)

    # the department registers it; the sender follows it
    delivery = inbox(secure, DEPARTMENT)[document_id]
    channel, stub = secure.documents(unit(DEPARTMENT))
    with channel:
        stub.AcknowledgeDelivery(
            doc_pb.AcknowledgeDeliveryRequest(
                delivery_id=delivery.delivery_id, status_code="03", staff="Văn thư"
            ),
            timeout=10,
        )
    tracks = eventually_sync(
        lambda: track(secure, document_id),
        until=lambda found: found.get(DEPARTMENT, doc_pb.RecipientTrack()).status_code == "03",
    )
    assert tracks[COMMUNE].status_code == "01"

    # counted: sent over the network with both signatures, received and acknowledged
    year = track_year(secure, document_id)
    rows = eventually_sync(
        lambda: report(secure, year),
        until=lambda rows: (
            rows[SENDER].outgoing_over_network == 1
            and rows[DEPARTMENT].incoming_over_network == 1
            and rows[DEPARTMENT].deliveries_acknowledged == 1
        ),
    )
    assert rows[SENDER].outgoing_personal_signed == 1
    assert rows[SENDER].outgoing_organisation_signed == 1

    # the audit log is intact against checkpoints document-service read back over Kafka TLS
    def verify_audit() -> doc_pb.VerifyAuditResponse:
        channel, stub = secure.documents(OBSERVER)
        with channel:
            reply: doc_pb.VerifyAuditResponse = stub.VerifyAudit(
                doc_pb.VerifyAuditRequest(), timeout=30
            )
        return reply

    audit = eventually_sync(verify_audit, until=lambda reply: reply.checkpoints_verified > 0)
    assert audit.intact, audit.problem

    for name, service in secure.platform.processes.items():
        log = service.log_path.read_text(errors="replace")
        assert "AuthorizationFailed" not in log, name
        assert '"task": "audit_checkpoint"' not in log, name  # no failed checkpoint round


def track_year(secure: Secure, document_id: str) -> str:
    channel, stub = secure.documents(unit(SENDER))
    with channel:
        got = stub.GetDocument(doc_pb.GetDocumentRequest(document_id=document_id), timeout=10)
    return got.document.submitted_at.ToDatetime().strftime("%Y")


def test_no_certificate_no_call_and_the_dev_header_counts_for_nothing(secure: Secure) -> None:
    endpoint = secure.platform.endpoint("document-service")
    header = (("x-lienthong-identity", unit(SENDER)),)
    with grpc.insecure_channel(endpoint) as channel, pytest.raises(grpc.RpcError) as plaintext:
        DocumentServiceStub(channel).ListInbox(
            doc_pb.ListInboxRequest(), metadata=header, timeout=10
        )
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    anonymous = grpc.ssl_channel_credentials(secure.tls.ca_path.read_bytes())
    with (
        grpc.secure_channel(endpoint, anonymous) as channel,
        pytest.raises(grpc.RpcError) as no_certificate,
    ):
        DocumentServiceStub(channel).ListInbox(
            doc_pb.ListInboxRequest(), metadata=header, timeout=10
        )
    assert no_certificate.value.code() == grpc.StatusCode.UNAVAILABLE
    # an operator's certificate with a unit's header is still the operator
    with (
        secure.platform.channel("document-service", OBSERVER) as channel,
        pytest.raises(grpc.RpcError) as operator,
    ):
        DocumentServiceStub(channel).ListInbox(
            doc_pb.ListInboxRequest(), metadata=header, timeout=10
        )
    assert operator.value.code() == grpc.StatusCode.PERMISSION_DENIED
