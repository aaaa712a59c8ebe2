"""signature-service's real server in-process, with document-service, the broker and the
store: the verification flow, the dead-letter path and the RPCs."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer

from document_service.__main__ import Settings as DocumentSettings
from document_service.__main__ import build as build_documents
from lienthong.common.v1.common_pb2 import (
    AttachmentRef,
    CheckOutcome,
    DocumentSummary,
    Indication,
    Recipients,
    SignerKind,
    Verdict,
)
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import DocumentSubmitted, DocumentVerified
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_kit.envelope import (
    EventEnvelope,
    decode_envelope,
    derived_event_id,
    new_event,
    unpack,
)
from lienthong_kit.kafka import Topics
from lienthong_kit.server import ServiceApp
from lienthong_testing.callers import OBSERVER, TRUST_ADMIN, as_unit, default_identity
from lienthong_testing.pki import LocalPki
from lienthong_testing.waiting import eventually
from signature_service.settings import Settings
from signature_service.store import SignatureStore

SENDER = "000.00.00.H23"
RECIPIENT = "000.01.00.H23"
MIME = {".pdf": "application/pdf", ".p7s": "application/pkcs7-signature"}

# calls name a unit unless they name another caller
AS_A_UNIT = default_identity(as_unit("000.00.00.H23"))


def unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


@pytest.fixture
async def documents(start_service: Any) -> ServiceApp:
    app: ServiceApp = await start_service("document-service", build_documents, DocumentSettings)
    return app


@pytest.fixture
async def document_stub(documents: ServiceApp) -> AsyncIterator[DocumentServiceStub]:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{documents.grpc_port}", interceptors=AS_A_UNIT
    ) as channel:
        yield DocumentServiceStub(channel)


@pytest.fixture
async def signature(start_signature: Any, documents: ServiceApp) -> ServiceApp:
    app: ServiceApp = await start_signature(
        LIENTHONG_SIGNATURE_DOCUMENT_SERVICE=f"127.0.0.1:{documents.grpc_port}"
    )
    return app


async def upload(stub: DocumentServiceStub, name: str, content: bytes) -> AttachmentRef:
    async def parts() -> AsyncIterator[doc_pb.UploadAttachmentRequest]:
        mime = MIME.get(Path(name).suffix, "application/vnd.ms-excel")
        yield doc_pb.UploadAttachmentRequest(
            header=doc_pb.AttachmentHeader(name=name, mime_type=mime)
        )
        for start in range(0, len(content), 64 * 1024):
            yield doc_pb.UploadAttachmentRequest(chunk=content[start : start + 64 * 1024])

    reply = await stub.UploadAttachment(parts(), metadata=unit(SENDER))
    return reply.attachment


async def submit(stub: DocumentServiceStub, files: list[tuple[str, bytes]], number: str) -> str:
    refs = [await upload(stub, name, content) for name, content in files]
    reply = await stub.SubmitDocument(
        doc_pb.SubmitDocumentRequest(
            idempotency_key=f"sig-{number}",
            recipients=Recipients(unit_codes=[RECIPIENT]),
            code={"number": number, "notation": "QĐ-UBND"},
            document_type="QĐ",
            subject="Quyết định phê duyệt kế hoạch",
            promulgation_date="2026-11-20",
            attachment_ids=[ref.attachment_id for ref in refs],
        ),
        metadata=unit(SENDER),
    )
    return reply.document.document_id


async def verdicts(topic_reader: Any, topics: Topics, count: int) -> dict[str, DocumentVerified]:
    records = await topic_reader(topics.verifications, count, timeout=60)
    found = [unpack(decode_envelope(r.value), DocumentVerified) for r in records]
    return {v.document.document_id: v for v in found}


async def test_submitted_documents_are_verified_with_a_per_signature_report(
    signature: ServiceApp,
    document_stub: DocumentServiceStub,
    docs: dict[str, Any],
    topic_reader: Any,
) -> None:
    valid = await submit(document_stub, docs["cms-signed-appendix"], "1")
    revoked = await submit(document_stub, docs["revoked-signer"], "2")
    found = await verdicts(topic_reader, signature.topics, 2)

    accepted = found[valid]
    assert accepted.verdict == Verdict.VERDICT_ACCEPTED, accepted.reason
    assert accepted.personal_signature_valid
    assert accepted.organisation_signature_valid
    assert [(s.file_name, s.index, s.signer_kind, s.format) for s in accepted.signatures] == [
        ("qd-15.pdf", 0, SignerKind.SIGNER_KIND_PERSON, "pades"),
        ("qd-15.pdf", 1, SignerKind.SIGNER_KIND_ORGANISATION, "pades"),
        ("phu-luc.xlsx", 0, SignerKind.SIGNER_KIND_ORGANISATION, "cms-detached"),
    ]
    assert all(
        c.outcome == CheckOutcome.CHECK_OUTCOME_PASSED for c in accepted.signatures[0].checks
    )
    assert accepted.signatures[0].signer_uid == "CCCD:001085012345"
    assert accepted.signatures[0].HasField("signing_time")

    rejected = found[revoked]
    assert rejected.verdict == Verdict.VERDICT_REJECTED
    assert rejected.failed_rule == "signatures-valid"
    assert "revoked" in rejected.reason
    assert not rejected.personal_signature_valid
    assert rejected.organisation_signature_valid
    assert rejected.signatures[0].reason.startswith("revocation: the certificate was revoked on")
    # what document-service and notification see: the ETSI indication, both languages, the
    # library's words apart
    revoked_sig = rejected.signatures[0]
    assert (revoked_sig.indication, revoked_sig.sub_indication) == (
        Indication.INDICATION_INDETERMINATE,
        "REVOKED_NO_POE",
    )
    assert revoked_sig.reason_vi.startswith("revocation: chứng thư đã bị thu hồi ngày")
    assert rejected.reason_vi.startswith("qd-15.pdf: chữ ký 0 (cá nhân CN=Trần Thị Bình")
    revocation = next(c for c in revoked_sig.checks if c.name == "revocation")
    assert revocation.detail_vi.startswith("chứng thư đã bị thu hồi ngày")
    assert revocation.technical  # pyhanko's own words, kept apart from the clerk's
    assert revocation.technical not in revocation.detail
    assert accepted.signatures[0].indication == Indication.INDICATION_TOTAL_PASSED
    assert accepted.signatures[0].sub_indication == ""

    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{signature.grpc_port}", interceptors=AS_A_UNIT
    ) as channel:
        stub = SignatureServiceStub(channel)
        reply = await stub.GetVerification(pb.GetVerificationRequest(document_id=revoked))
        # signer names and ID numbers are for the document's parties and observers only
        with pytest.raises(grpc.aio.AioRpcError) as refusal:
            await stub.GetVerification(
                pb.GetVerificationRequest(document_id=revoked), metadata=as_unit("000.09.00.H23")
            )
    assert reply.failed_rule == "signatures-valid"
    assert list(reply.signatures) == list(rejected.signatures)
    assert reply.reason_vi == rejected.reason_vi
    assert refusal.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "neither the sender" in (refusal.value.details() or "")


def unsigned_submission(document_id: str) -> tuple[DocumentSubmitted, EventEnvelope]:
    """document-service's event for a decision (QĐ) without files, to one recipient."""
    submitted = DocumentSubmitted(
        document=DocumentSummary(document_id=document_id, sender_code=SENDER, document_type="QĐ"),
        recipients=Recipients(unit_codes=[RECIPIENT]),
    )
    return submitted, new_event(submitted, producer="document-service")


async def test_an_event_is_verified_once_and_unsigned_documents_are_rejected(
    signature: ServiceApp, topic_reader: Any
) -> None:
    _, envelope = unsigned_submission("doc-7")
    for _ in range(2):  # the second is a redelivery of the same event
        await signature.producer.publish(signature.topics.documents, key="doc-7", envelope=envelope)
    # a marker after both, on the same partition: once its verdict is out, a second verdict
    # for doc-7 would be in the log already
    marker = DocumentSubmitted(document=DocumentSummary(document_id="doc-8", sender_code=SENDER))
    await signature.producer.publish(
        signature.topics.documents,
        key="doc-7",
        envelope=new_event(marker, producer="document-service"),
    )
    records = await topic_reader(signature.topics.verifications, 2)
    with pytest.raises(TimeoutError):
        await topic_reader(signature.topics.verifications, 3, timeout=3)
    by_document = {
        unpack(decode_envelope(r.value), DocumentVerified).document.document_id: r for r in records
    }
    assert sorted(by_document) == ["doc-7", "doc-8"]
    out = decode_envelope(by_document["doc-7"].value)
    verified = unpack(out, DocumentVerified)
    assert out.event_id == derived_event_id(envelope.event_id, "verified")
    assert verified.verdict == Verdict.VERDICT_REJECTED
    assert (verified.failed_rule, verified.reason) == (
        "no-signed-file",
        "the document has no file to verify",
    )


async def test_a_verdict_recorded_before_a_stop_is_announced_without_a_second_verification(
    signature: ServiceApp, topic_reader: Any
) -> None:
    submitted, envelope = unsigned_submission("doc-9")
    # a run recorded this verdict and stopped before announcing it; verified again, the
    # unsigned document would be rejected, so an acceptance on the topic is the stored one
    stored = DocumentVerified(
        document=submitted.document,
        recipients=submitted.recipients,
        verdict=Verdict.VERDICT_ACCEPTED,
        reason="recorded before the stop",
    )
    await SignatureStore(signature.db).record_verification(stored, event_id=envelope.event_id)
    await signature.producer.publish(signature.topics.documents, key="doc-9", envelope=envelope)
    (record,) = await topic_reader(signature.topics.verifications, 1)
    out = decode_envelope(record.value)
    assert out.event_id == derived_event_id(envelope.event_id, "verified")
    assert unpack(out, DocumentVerified) == stored


async def test_bytes_that_do_not_match_the_reference_reject_the_document(
    signature: ServiceApp,
    document_stub: DocumentServiceStub,
    docs: dict[str, Any],
    topic_reader: Any,
) -> None:
    document_id = await submit(document_stub, docs["person-then-organisation"], "3")
    await verdicts(topic_reader, signature.topics, 1)  # the real event's verdict
    ref = (
        await document_stub.GetDocument(
            doc_pb.GetDocumentRequest(document_id=document_id), metadata=unit(SENDER)
        )
    ).attachments[0]
    forged = AttachmentRef()
    forged.CopyFrom(ref)
    forged.sha256 = hashlib.sha256(b"something else").hexdigest()
    event = new_event(
        DocumentSubmitted(
            document=DocumentSummary(document_id=document_id, sender_code=SENDER),
            attachments=[forged],
        ),
        producer="test",
    )
    await signature.producer.publish(signature.topics.documents, key=document_id, envelope=event)
    records = await topic_reader(signature.topics.verifications, 2, timeout=60)
    second = unpack(decode_envelope(records[-1].value), DocumentVerified)
    assert second.verdict == Verdict.VERDICT_REJECTED
    assert second.failed_rule == "readable-files"
    assert "do not match the submitted attachment" in second.reason


@pytest.mark.parametrize(
    ("attachment", "reason"),
    [
        pytest.param(AttachmentRef(name="a.pdf", sha256="ab" * 32), "no attachment_id", id="no-id"),
        pytest.param(
            AttachmentRef(attachment_id="x", name="a.pdf", sha256="XYZ"),
            "is not lower-case hex",
            id="bad-sha256",
        ),
    ],
)
async def test_a_malformed_event_is_dead_lettered_with_its_reason(
    signature: ServiceApp,
    raw_producer: AIOKafkaProducer,
    topic_reader: Any,
    attachment: AttachmentRef,
    reason: str,
) -> None:
    event = new_event(
        DocumentSubmitted(
            document=DocumentSummary(document_id="doc-bad", sender_code=SENDER),
            attachments=[attachment],
        ),
        producer="test",
    )
    await signature.producer.publish(signature.topics.documents, key="doc-bad", envelope=event)
    (record,) = await topic_reader(Topics.dlq(signature.topics.documents), 1)
    assert reason in dict(record.headers)["lienthong-dlq-reason"].decode()


# --- RPCs -----------------------------------------------------------------------------------


async def test_get_verification_answers_a_record_that_holds_only_verdict_and_reason(
    start_signature: Any,
) -> None:
    app: ServiceApp[Settings] = await start_signature()
    await app.db["verifications"].insert_one(
        {
            "_id": "doc-old",
            "verdict": Verdict.VERDICT_ACCEPTED,
            "reason": "2 valid signature(s)",
            "verified_at": datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
        }
    )
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.grpc_port}", interceptors=AS_A_UNIT
    ) as channel:
        stub = SignatureServiceStub(channel)
        reply = await stub.GetVerification(
            pb.GetVerificationRequest(document_id="doc-old"), metadata=OBSERVER
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetVerification(pb.GetVerificationRequest(document_id="doc-none"))
    assert (reply.document_id, reply.verdict, reply.reason) == (
        "doc-old",
        Verdict.VERDICT_ACCEPTED,
        "2 valid signature(s)",
    )
    assert not reply.signatures
    assert reply.verified_at.ToDatetime(UTC) == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_verify_document_returns_the_full_report(
    signature_stub: SignatureServiceStub, docs: dict[str, Any]
) -> None:
    reply = await signature_stub.VerifyDocument(
        pb.VerifyDocumentRequest(
            files=[pb.DocumentFile(name=n, content=c) for n, c in docs["wrong-order"]],
            document_type="QĐ",
        )
    )
    assert reply.verdict == Verdict.VERDICT_REJECTED
    assert reply.failed_rule == "organisation-signature-after-personal"
    assert reply.policy_rule == "*@*=person-then-organisation"
    assert [s.signer_kind for s in reply.signatures] == [
        SignerKind.SIGNER_KIND_ORGANISATION,
        SignerKind.SIGNER_KIND_PERSON,
    ]


async def test_verify_document_names_unreadable_files(
    signature_stub: SignatureServiceStub, docs: dict[str, Any]
) -> None:
    reply = await signature_stub.VerifyDocument(
        pb.VerifyDocumentRequest(
            files=[pb.DocumentFile(name=n, content=c) for n, c in docs["not-a-pdf"]]
        )
    )
    assert reply.verdict == Verdict.VERDICT_REJECTED
    assert [p.file_name for p in reply.file_problems] == ["qd-15.pdf"]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(pb.VerifyDocumentRequest(), "files", id="no-files"),
        pytest.param(
            pb.VerifyDocumentRequest(files=[pb.DocumentFile(name="a.pdf")]),
            "files[0].content",
            id="empty-file",
        ),
        pytest.param(
            pb.VerifyDocumentRequest(files=[pb.DocumentFile(content=b"%PDF-")]),
            "files[0].name",
            id="no-name",
        ),
    ],
)
async def test_verify_document_rejects_bad_requests(
    signature_stub: SignatureServiceStub, request_: pb.VerifyDocumentRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await signature_stub.VerifyDocument(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{field}:" in (info.value.details() or "")


@pytest.mark.parametrize(
    ("signer", "valid", "failed_check"),
    [
        pytest.param("person", True, "", id="person"),
        pytest.param("revoked", False, "revocation", id="revoked"),
        pytest.param("expired", False, "validity", id="expired"),
        pytest.param("wrong-key-usage", False, "key-usage", id="wrong-key-usage"),
        pytest.param("unknown-root", False, "chain", id="unknown-root"),
    ],
)
async def test_validate_certificate(
    signature_stub: SignatureServiceStub, pki: LocalPki, signer: str, valid: bool, failed_check: str
) -> None:
    reply = await signature_stub.ValidateCertificate(
        pb.ValidateCertificateRequest(certificate=pki.signers[signer].cert_file.read_bytes())
    )
    assert reply.valid is valid, reply.reason
    failed = [c.name for c in reply.checks if c.outcome == CheckOutcome.CHECK_OUTCOME_FAILED]
    assert failed == ([failed_check] if failed_check else [])
    if valid:
        assert reply.signer_kind == SignerKind.SIGNER_KIND_PERSON
        assert reply.chain[-1].startswith("CN=Test Root CA")


async def test_validate_certificate_rejects_garbage(signature_stub: SignatureServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await signature_stub.ValidateCertificate(pb.ValidateCertificateRequest(certificate=b"nope"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "certificate:" in (info.value.details() or "")


async def test_validate_certificate_names_an_out_of_range_time(
    signature_stub: SignatureServiceStub, pki: LocalPki
) -> None:
    request = pb.ValidateCertificateRequest(
        certificate=pki.signers["person"].cert_file.read_bytes()
    )
    request.at.seconds = 10**12  # after year 9999
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await signature_stub.ValidateCertificate(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at: not a valid time" in (info.value.details() or "")


async def test_an_operator_adds_a_trust_anchor(
    signature_stub: SignatureServiceStub, pki: LocalPki, docs: dict[str, Any]
) -> None:
    files = [pb.DocumentFile(name=n, content=c) for n, c in docs["unknown-root"]]
    before = await signature_stub.VerifyDocument(pb.VerifyDocumentRequest(files=files))
    assert "no chain to a configured trust anchor" in before.reason
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await signature_stub.AddTrustAnchor(
            pb.AddTrustAnchorRequest(certificate=pki.unknown_root_file.read_bytes()),
            metadata=unit(SENDER),
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    reply = await signature_stub.AddTrustAnchor(
        pb.AddTrustAnchorRequest(certificate=pki.unknown_root_file.read_bytes()),
        metadata=TRUST_ADMIN,
    )
    assert reply.added
    assert reply.anchor.source == "operator:test-admin"
    listed = await signature_stub.ListTrustAnchors(pb.ListTrustAnchorsRequest())
    assert {a.subject.split(",")[0] for a in listed.anchors} == {
        "CN=Test Root CA (NEAC test)",
        "CN=Unknown Root CA",
    }
    assert [i.subject.split(",")[0] for i in listed.intermediates] == [
        "CN=Test Government Specialised CA"
    ]
    after = await signature_stub.VerifyDocument(pb.VerifyDocumentRequest(files=files))
    assert "no chain" not in after.reason


async def test_a_leaf_certificate_is_not_a_trust_anchor(
    signature_stub: SignatureServiceStub, pki: LocalPki
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await signature_stub.AddTrustAnchor(
            pb.AddTrustAnchorRequest(certificate=pki.signers["person"].cert_file.read_bytes()),
            metadata=TRUST_ADMIN,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a CA certificate" in (info.value.details() or "")


async def test_trust_anchor_files_are_reloaded_when_they_change(
    start_signature: Any, pki: LocalPki, tmp_path: Path
) -> None:
    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "root.pem").write_bytes(pki.anchors_file.read_bytes())
    app: ServiceApp = await start_signature(
        LIENTHONG_SIGNATURE_TRUST_ANCHORS=str(folder),
        LIENTHONG_SIGNATURE_TRUST_RELOAD_SECONDS="0.2",
    )
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.grpc_port}", interceptors=AS_A_UNIT
    ) as channel:
        stub = SignatureServiceStub(channel)
        first = await stub.ListTrustAnchors(pb.ListTrustAnchorsRequest())
        assert len(first.anchors) == 1
        (folder / "unknown.pem").write_bytes(pki.unknown_root_file.read_bytes())
        reply = await eventually(
            lambda: stub.ListTrustAnchors(pb.ListTrustAnchorsRequest()),
            until=lambda r: len(r.anchors) == 2,
        )
    assert {a.source for a in reply.anchors} == {
        f"config:{folder / 'root.pem'}",
        f"config:{folder / 'unknown.pem'}",
    }


async def redeliver(stub: DocumentServiceStub, app: ServiceApp, document_id: str) -> None:
    """document.submitted for a stored document once more, as Kafka redelivers it."""
    found = await stub.GetDocument(
        doc_pb.GetDocumentRequest(document_id=document_id), metadata=unit(SENDER)
    )
    event = new_event(
        DocumentSubmitted(
            document=DocumentSummary(
                document_id=document_id, sender_code=SENDER, document_type="QĐ"
            ),
            attachments=list(found.attachments),
        ),
        producer="test",
    )
    await app.producer.publish(app.topics.documents, key=document_id, envelope=event)


async def test_a_document_the_service_died_verifying_is_rejected_after_its_attempts(
    start_signature: Any,
    documents: ServiceApp,
    document_stub: DocumentServiceStub,
    docs: dict[str, Any],
    topic_reader: Any,
) -> None:
    app: ServiceApp = await start_signature(
        LIENTHONG_SIGNATURE_DOCUMENT_SERVICE=f"127.0.0.1:{documents.grpc_port}",
        LIENTHONG_SIGNATURE_MAX_ATTEMPTS="3",
    )
    document_id = await submit(document_stub, docs["person-then-organisation"], "6")
    first = (await verdicts(topic_reader, app.topics, 1))[document_id]
    assert first.verdict == Verdict.VERDICT_ACCEPTED, first.reason
    attempts = app.db["verification_attempts"]
    assert await attempts.find_one({"_id": document_id}) is None  # a verdict clears the count
    # three earlier processes started verifying it and died before a verdict (OOM-killed by
    # a hostile file): the count is in the store, so this process does not try a fourth time
    store = SignatureStore(app.db)
    for _ in range(3):
        await store.start_attempt(document_id)
    await redeliver(document_stub, app, document_id)

    records = await topic_reader(app.topics.verifications, 2, timeout=60)
    second = unpack(decode_envelope(records[-1].value), DocumentVerified)
    assert second.verdict == Verdict.VERDICT_REJECTED
    assert second.failed_rule == "readable-files"
    assert "verification was started 3 times and never finished" in second.reason
    assert "đã bắt đầu kiểm tra 3 lần" in second.reason_vi
    assert await attempts.find_one({"_id": document_id}) is None


async def test_a_document_over_the_total_cap_is_rejected_and_its_precheck_refused(
    start_signature: Any,
    documents: ServiceApp,
    document_stub: DocumentServiceStub,
    docs: dict[str, Any],
    topic_reader: Any,
) -> None:
    files = docs["cms-signed-appendix"]
    cap = len(files[0][1]) + 10  # each file fits, the three together do not
    total = sum(len(content) for _, content in files)
    app: ServiceApp = await start_signature(
        LIENTHONG_SIGNATURE_DOCUMENT_SERVICE=f"127.0.0.1:{documents.grpc_port}",
        LIENTHONG_SIGNATURE_MAX_DOCUMENT_BYTES=str(cap),
    )
    document_id = await submit(document_stub, files, "7")
    verified = (await verdicts(topic_reader, app.topics, 1))[document_id]
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.grpc_port}", interceptors=AS_A_UNIT
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refusal:
            await SignatureServiceStub(channel).VerifyDocument(
                pb.VerifyDocumentRequest(
                    files=[pb.DocumentFile(name=n, content=c) for n, c in files]
                )
            )
    assert verified.verdict == Verdict.VERDICT_REJECTED
    assert verified.failed_rule == "readable-files"
    assert f"files total {total} bytes, more than the {cap} verified" in verified.reason
    assert refusal.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"files: {total} bytes in all, more than the {cap}" in (refusal.value.details() or "")
