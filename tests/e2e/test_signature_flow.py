"""End to end with real signatures: the five services as processes, the test PKI's CRL server
and OCSP responder. A document signed by a revoked signer goes back to its sender with the
reason for every recipient; a properly signed one reaches the inboxes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lienthong.common.v1.common_pb2 import Verdict
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.signature.v1 import signature_service_pb2 as sig_pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_local.platform import Platform
from lienthong_local.run import load_sample_registry
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.pki import LocalPki, documents, running_pki
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

SENDER = "000.00.00.H23"
DEPARTMENT = "000.01.00.H23"
DISTRICT = "000.00.31.H23"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPki]:
    with running_pki(tmp_path_factory.mktemp("e2e-pki")) as running:
        yield running


@pytest.fixture(scope="module")
def platform(
    infra: None, pki: LocalPki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    prefix = f"e2esig{uuid.uuid4().hex[:8]}_"
    env = {
        "LIENTHONG_SIGNATURE_TRUST_ANCHORS": str(pki.anchors_file),
        "LIENTHONG_SIGNATURE_INTERMEDIATES": str(pki.intermediates_file),
        "LIENTHONG_SIGNATURE_WORKERS": "1",
    }
    with Platform.start(
        log_dir=tmp_path_factory.mktemp("platform-logs"), prefix=prefix, extra_env=env
    ) as running:
        load_sample_registry(running.endpoint("routing-service"))
        # document-service learns the registry from the units topic: the sender is admitted
        # once its tail has read it (a call before that is refused as an unknown unit)
        eventually_sync(lambda: admitted(running, SENDER), until=bool)
        yield running
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def admitted(platform: Platform, unit: str) -> bool:
    """True once document-service admits ``unit`` (its registry knows the unit)."""
    try:
        inbox(platform, unit)
    except grpc.RpcError as refused:
        if refused.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise
        return False
    return True


def as_unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


def submit(
    platform: Platform, files: list[tuple[str, bytes]], recipients: list[str], number: str
) -> str:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        stub = DocumentServiceStub(channel)
        ids = []
        for name, content in files:
            parts = [
                doc_pb.UploadAttachmentRequest(
                    header=doc_pb.AttachmentHeader(name=name, mime_type="application/pdf")
                ),
                doc_pb.UploadAttachmentRequest(chunk=content),
            ]
            reply = stub.UploadAttachment(iter(parts), metadata=as_unit(SENDER), timeout=10)
            ids.append(reply.attachment.attachment_id)
        submitted = stub.SubmitDocument(
            doc_pb.SubmitDocumentRequest(
                idempotency_key=f"e2e-sig-{number}",
                recipients={"unit_codes": recipients},
                code={"number": number, "notation": "QĐ-UBND"},
                document_type="QĐ",
                subject="Quyết định về việc phê duyệt kế hoạch chuyển đổi số",
                priority=1,
                promulgation_date="2026-11-20",
                attachment_ids=ids,
            ),
            metadata=as_unit(SENDER),
            timeout=10,
        )
    return submitted.document.document_id


def inbox(platform: Platform, unit: str) -> list[str]:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        reply = DocumentServiceStub(channel).ListInbox(
            doc_pb.ListInboxRequest(page_size=200), metadata=as_unit(unit), timeout=10
        )
    return [entry.document.document_id for entry in reply.entries]


def track(platform: Platform, document_id: str) -> dict[str, doc_pb.RecipientTrack]:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        reply = DocumentServiceStub(channel).TrackDocument(
            doc_pb.TrackDocumentRequest(document_id=document_id),
            metadata=as_unit(SENDER),
            timeout=10,
        )
    return {r.recipient_code: r for r in reply.recipients}


def test_a_properly_signed_document_reaches_the_inboxes(platform: Platform, pki: LocalPki) -> None:
    files = documents(pki)["person-then-organisation"]
    document_id = submit(platform, files, [DEPARTMENT, DISTRICT], "201")
    for unit in (DEPARTMENT, DISTRICT):
        eventually_sync(
            lambda unit=unit: inbox(platform, unit), until=lambda ids: document_id in ids
        )
    with grpc.insecure_channel(platform.endpoint("signature-service")) as channel:
        verification = SignatureServiceStub(channel).GetVerification(
            sig_pb.GetVerificationRequest(document_id=document_id),
            metadata=as_unit(SENDER),
            timeout=10,
        )
    assert verification.verdict == Verdict.VERDICT_ACCEPTED
    assert verification.personal_signature_valid
    assert verification.organisation_signature_valid
    assert len(verification.signatures) == 2


def test_a_document_signed_by_a_revoked_signer_returns_to_its_sender(
    platform: Platform, pki: LocalPki
) -> None:
    files = documents(pki)["revoked-signer"]
    document_id = submit(platform, files, [DEPARTMENT, DISTRICT], "202")
    states = eventually_sync(
        lambda: track(platform, document_id),
        until=lambda found: len(found) == 2 and all(t.bounce_reason for t in found.values()),
    )
    for unit in (DEPARTMENT, DISTRICT):
        state = states[unit]
        assert "signature verification refused the document" in state.bounce_reason
        assert "the certificate was revoked on" in state.bounce_reason
        # returned to the sender: edXML status 02 with the reason
        assert state.status_code == "02"
    # a later valid document arrives, the revoked one never did
    later = submit(platform, documents(pki)["person-then-organisation"], [DEPARTMENT], "203")
    arrived = eventually_sync(lambda: inbox(platform, DEPARTMENT), until=lambda ids: later in ids)
    assert document_id not in arrived


def test_signature_service_says_it_accepts_unsigned_documents_in_development(
    platform: Platform,
) -> None:
    log = Path(platform.processes["signature-service"].log_path).read_text()
    assert "DEVELOPMENT_MODE_UNSIGNED_DOCUMENTS_ACCEPTED" in log
