"""The document lifecycle through document-service's real server, broker and store:
attachments, numbering, paper, acknowledgements, tracking, recall, watch and audit."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong.common.v1.common_pb2 import (
    DocumentSummary,
    SignatureReport,
    SignerKind,
    Verdict,
)
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import (
    DeliveryBounced,
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentVerified,
    PaperDocumentRegistered,
)
from lienthong_kit.envelope import decode_envelope, new_event, unpack
from lienthong_kit.server import ServiceApp
from lienthong_testing.callers import OBSERVER
from lienthong_testing.waiting import eventually

SENDER = "000.00.00.H23"
A, B = "000.01.00.H23", "000.00.31.H23"
PDF = b"%PDF-1.7\n" + b"lien thong " * 50_000 + b"\n%%EOF\n"  # ~550 kB: several chunks


def unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


_numbers = iter(range(1, 1_000_000))


async def submit(stub: DocumentServiceStub, **overrides: Any) -> DocumentSummary:
    fields: dict[str, Any] = {
        "recipients": {"unit_codes": [A, B]},
        "code": {"number": str(next(_numbers)), "notation": "CV-UBND"},
        "subject": "Về việc báo cáo tình hình thực hiện",
        "promulgation_date": "2026-11-20",
        **overrides,
    }
    reply = await stub.SubmitDocument(pb.SubmitDocumentRequest(**fields), metadata=unit(SENDER))
    return reply.document


async def deliver(
    service: ServiceApp, stub: DocumentServiceStub, document: DocumentSummary, *to: str
) -> dict[str, str]:
    """Route ``document`` to ``to`` as routing-service would; return delivery ids by unit."""
    ids = {}
    for recipient in to:
        delivery_id = f"{document.document_id}/{recipient}"
        event = new_event(
            DeliveryCreated(delivery_id=delivery_id, document=document, recipient_code=recipient),
            producer="routing-service",
        )
        await service.producer.publish(service.topics.deliveries, key=recipient, envelope=event)
        ids[recipient] = delivery_id
    for recipient, delivery_id in ids.items():
        await eventually(
            lambda recipient=recipient: stub.ListInbox(
                pb.ListInboxRequest(), metadata=unit(recipient)
            ),
            until=lambda reply, d=delivery_id: d in {e.delivery_id for e in reply.entries},
        )
    return ids


async def ack(
    stub: DocumentServiceStub, delivery_id: str, code: str, who: str, why: str = ""
) -> pb.AcknowledgeDeliveryResponse:
    return await stub.AcknowledgeDelivery(
        pb.AcknowledgeDeliveryRequest(
            delivery_id=delivery_id, status_code=code, description=why, staff="Nguyễn Văn An"
        ),
        metadata=unit(who),
    )


async def upload(
    stub: DocumentServiceStub, content: bytes, mime: str = "application/pdf", who: str = SENDER
) -> pb.UploadAttachmentResponse:
    async def parts() -> AsyncIterator[pb.UploadAttachmentRequest]:
        yield pb.UploadAttachmentRequest(
            header=pb.AttachmentHeader(name="qd-15.pdf", mime_type=mime)
        )
        for start in range(0, len(content), 64 * 1024):
            yield pb.UploadAttachmentRequest(chunk=content[start : start + 64 * 1024])

    return await stub.UploadAttachment(parts(), metadata=unit(who))


# --- attachments --------------------------------------------------------------------------


async def test_an_attachment_round_trips_with_its_sha256(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    ref = (await upload(stub, PDF)).attachment
    assert (ref.size_bytes, ref.sha256) == (len(PDF), hashlib.sha256(PDF).hexdigest())
    document = await submit(stub, attachment_ids=[ref.attachment_id])
    await deliver(service, stub, document, A)
    parts = [
        part
        async for part in stub.GetAttachment(
            pb.GetAttachmentRequest(
                document_id=document.document_id, attachment_id=ref.attachment_id
            ),
            metadata=unit(A),
        )
    ]
    assert parts[0].attachment.sha256 == hashlib.sha256(PDF).hexdigest()
    assert b"".join(part.chunk for part in parts[1:]) == PDF


async def test_attachments_are_checked(stub: DocumentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await upload(stub, b"MZ\x90\x00", mime="application/x-msdownload")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header.mime_type" in (info.value.details() or "")
    foreign = (await upload(stub, PDF, who=A)).attachment
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await submit(stub, attachment_ids=[foreign.attachment_id])
    assert "attachment_ids[0]" in (info.value.details() or "")


# --- numbering and paper ------------------------------------------------------------------


async def test_reserved_numbers_are_unique_under_concurrency(stub: DocumentServiceStub) -> None:
    # several fresh series: the first reservations of a series race to create its counter
    for series in ("QĐ-UBND", "KH-UBND", "TB-UBND", "BC-UBND", "CV-UBND"):
        replies = await asyncio.gather(
            *(
                stub.ReserveNumber(pb.ReserveNumberRequest(series=series), metadata=unit(SENDER))
                for _ in range(20)
            )
        )
        assert sorted(int(r.number) for r in replies) == list(range(1, 21)), series
        assert all(len(r.number) >= 2 for r in replies)  # 01, 02, ... as edXML writes them
    other = await stub.ReserveNumber(pb.ReserveNumberRequest(series="QĐ-UBND"), metadata=unit(A))
    assert other.number == "01"  # each unit counts its own series


async def test_a_paper_document_is_registered_once_and_announced(
    stub: DocumentServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    request = pb.RegisterPaperDocumentRequest(
        idempotency_key="paper-1",
        direction=pb.Direction.DIRECTION_INCOMING,
        counterpart="Công ty TNHH Minh Phát",
        code={"number": "7", "notation": "CV"},
        subject="Đề nghị cấp phép",
    )
    first = await stub.RegisterPaperDocument(request, metadata=unit(A))
    again = await stub.RegisterPaperDocument(request, metadata=unit(A))
    assert again.paper_document_id == first.paper_document_id
    # the retry announces it again (its first announcement may have been lost): one event id
    records = await topic_reader(service.topics.documents, 2)
    assert len({decode_envelope(record.value).event_id for record in records}) == 1
    registered = unpack(decode_envelope(records[0].value), PaperDocumentRegistered)
    assert (registered.unit_code, registered.direction) == (A, "incoming")


async def test_secret_documents_are_refused(stub: DocumentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await submit(stub, secrecy=pb.Secrecy.SECRECY_SECRET)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "secrecy" in (info.value.details() or "")


# --- acknowledgements and tracking --------------------------------------------------------


async def test_status_moves_are_tracked_for_the_sender(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    document = await submit(stub)
    ids = await deliver(service, stub, document, A, B)
    for code in ("03", "04", "05", "06"):
        await ack(stub, ids[A], code, A)
    await ack(stub, ids[B], "02", B, "Gửi nhầm đơn vị")
    track = await stub.TrackDocument(
        pb.TrackDocumentRequest(document_id=document.document_id), metadata=unit(SENDER)
    )
    by_unit = {t.recipient_code: t for t in track.recipients}
    assert [h.status_code for h in by_unit[A].history] == ["01", "03", "04", "05", "06"]
    assert by_unit[B].status_code == "02"
    assert by_unit[B].history[-1].description == "Gửi nhầm đơn vị"


async def test_an_acknowledgement_retried_with_its_key_answers_the_first_move(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    document = await submit(stub, recipients={"unit_codes": [A]})
    delivery_id = (await deliver(service, stub, document, A))[A]
    request = pb.AcknowledgeDeliveryRequest(
        delivery_id=delivery_id, status_code="03", staff="Nguyễn Văn An", idempotency_key="k-1"
    )
    first = await stub.AcknowledgeDelivery(request, metadata=unit(A))
    # the first answer was lost: the retry is answered, not refused as 03 -> 03
    again = await stub.AcknowledgeDelivery(request, metadata=unit(A))
    assert (first.status_code, again.status_code) == ("03", "03")
    await ack(stub, delivery_id, "04", A)
    # still the first move's answer after a later one, and recorded once
    late = await stub.AcknowledgeDelivery(request, metadata=unit(A))
    assert late.status_code == "03"
    track = await stub.TrackDocument(
        pb.TrackDocumentRequest(document_id=document.document_id), metadata=unit(SENDER)
    )
    assert [h.status_code for h in track.recipients[0].history] == ["01", "03", "04"]
    # without a key the same report is a move from 03 to 03 again: refused
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ack(stub, delivery_id, "03", A)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # the same key for another report names the key
    other = pb.AcknowledgeDeliveryRequest(
        delivery_id=delivery_id, status_code="05", staff="Nguyễn Văn An", idempotency_key="k-1"
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.AcknowledgeDelivery(other, metadata=unit(A))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (info.value.details() or "").startswith("idempotency_key:")


@pytest.mark.parametrize(
    ("code", "who", "why", "status"),
    [
        pytest.param("06", A, "", grpc.StatusCode.FAILED_PRECONDITION, id="skip-to-done"),
        pytest.param("02", A, "", grpc.StatusCode.INVALID_ARGUMENT, id="refuse-without-reason"),
        pytest.param("03", B, "", grpc.StatusCode.PERMISSION_DENIED, id="someone-elses-delivery"),
        pytest.param("99", A, "", grpc.StatusCode.INVALID_ARGUMENT, id="unknown-code"),
    ],
)
async def test_bad_acknowledgements_are_refused(
    stub: DocumentServiceStub,
    service: ServiceApp,
    code: str,
    who: str,
    why: str,
    status: grpc.StatusCode,
) -> None:
    document = await submit(stub, recipients={"unit_codes": [A]})
    ids = await deliver(service, stub, document, A)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ack(stub, ids[A], code, who, why)
    assert info.value.code() == status


async def test_inbox_filters(stub: DocumentServiceStub, service: ServiceApp) -> None:
    routine = await submit(stub, recipients={"unit_codes": [A]})
    urgent = await submit(stub, recipients={"unit_codes": [A]}, priority=3)
    ids = await deliver(service, stub, routine, A)
    await deliver(service, stub, urgent, A)
    await ack(stub, ids[A], "03", A)
    await stub.GetDocument(pb.GetDocumentRequest(document_id=urgent.document_id), metadata=unit(A))

    async def listed(**filters: Any) -> list[str]:
        reply = await stub.ListInbox(pb.ListInboxRequest(**filters), metadata=unit(A))
        return [e.document.document_id for e in reply.entries]

    assert await listed(min_priority=3) == [urgent.document_id]
    assert await listed(status_codes=["03"]) == [routine.document_id]
    assert await listed(unread_only=True) == [routine.document_id]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(
        st.sampled_from(["02", "03", "04", "05", "06", "15", "16", "recall"]), max_size=8
    )
)
async def test_no_sequence_of_calls_reaches_an_illegal_state(
    stub: DocumentServiceStub, service: ServiceApp, steps: list[str]
) -> None:
    document = await submit(stub, recipients={"unit_codes": [A]})
    delivery_id = (await deliver(service, stub, document, A))[A]
    allowed = {
        "01": {"02", "03"},
        "03": {"02", "04", "05"},
        "04": {"04", "05"},
        "05": {"06"},
        "02": set(),
        "06": set(),
    }
    status, recall = "01", ""
    for step in steps:
        if step == "recall":
            await stub.RecallDocument(
                pb.RecallDocumentRequest(
                    document_id=document.document_id,
                    business_type=pb.BusinessType.BUSINESS_TYPE_RECALL,
                    reason="sai sót",
                ),
                metadata=unit(SENDER),
            )
            if recall not in ("13", "15") and status != "02":
                recall = "13"
            continue
        legal = recall != "15" and (
            (step in ("15", "16") and recall == "13") or (step in allowed[status])
        )
        if not legal:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await ack(stub, delivery_id, step, A, "lý do")
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, info.value.details()
            continue
        reply = await ack(stub, delivery_id, step, A, "lý do")
        if step in ("15", "16"):
            recall = step
        else:
            status = step
        assert (reply.status_code, reply.recall_status) == (status, recall)


async def test_concurrent_clerks_cannot_both_move_a_delivery(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    document = await submit(stub, recipients={"unit_codes": [A]})
    delivery_id = (await deliver(service, stub, document, A))[A]
    attempts = [ack(stub, delivery_id, code, A, "lý do") for code in ["03", "02"] * 5]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [r for r in results if isinstance(r, pb.AcknowledgeDeliveryResponse)]
    # 03 then 02 is a legal path, so at most two moves; never two moves from the same state
    track = await stub.TrackDocument(
        pb.TrackDocumentRequest(document_id=document.document_id), metadata=unit(SENDER)
    )
    history = [h.status_code for h in track.recipients[0].history]
    assert history[0] == "01"
    assert history in (["01", "03"], ["01", "02"], ["01", "03", "02"])
    assert len(winners) == len(history) - 1
    assert track.recipients[0].status_code == history[-1]


# --- recall -------------------------------------------------------------------------------


async def test_recall_withdraws_accepting_copies_and_freezes_the_original(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    document = await submit(stub)
    ids = await deliver(service, stub, document, A, B)
    reply = await stub.RecallDocument(
        pb.RecallDocumentRequest(
            document_id=document.document_id,
            business_type=pb.BusinessType.BUSINESS_TYPE_RECALL,
            reason="Ban hành nhầm",
        ),
        metadata=unit(SENDER),
    )
    assert sorted(reply.recipient_codes) == sorted([A, B])
    inbox = await stub.ListInbox(pb.ListInboxRequest(), metadata=unit(A))
    assert {e.delivery_id: e.recall_status for e in inbox.entries}[ids[A]] == "13"
    await ack(stub, ids[A], "15", A)
    await ack(stub, ids[B], "16", B, "Đã triển khai thực hiện")
    inbox = await stub.ListInbox(pb.ListInboxRequest(), metadata=unit(A))
    assert ids[A] not in {e.delivery_id for e in inbox.entries}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetDocument(
            pb.GetDocumentRequest(document_id=document.document_id), metadata=unit(A)
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    track = await stub.TrackDocument(
        pb.TrackDocumentRequest(document_id=document.document_id), metadata=unit(SENDER)
    )
    assert track.frozen
    assert {t.recipient_code: t.recall_status for t in track.recipients} == {A: "15", B: "16"}


# --- watch --------------------------------------------------------------------------------


async def test_watch_inbox_streams_new_deliveries(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    earlier = await submit(stub, recipients={"unit_codes": [A]})
    await deliver(service, stub, earlier, A)
    since = earlier.submitted_at
    call = stub.WatchInbox(pb.WatchInboxRequest(since=since), metadata=unit(A))
    first = await call.read()
    assert first.entry.document.document_id == earlier.document_id  # the backlog comes first
    live = await submit(stub, recipients={"unit_codes": [A]})
    event = new_event(
        DeliveryCreated(delivery_id="live-1", document=live, recipient_code=A),
        producer="routing-service",
    )
    await service.producer.publish(service.topics.deliveries, key=A, envelope=event)
    second = await asyncio.wait_for(call.read(), timeout=30)
    assert second.entry.delivery_id == "live-1"
    call.cancel()


# --- audit --------------------------------------------------------------------------------


async def test_the_audit_chain_verifies_and_a_tampered_entry_is_named(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    document = await submit(stub, recipients={"unit_codes": [A]})
    ids = await deliver(service, stub, document, A)
    await ack(stub, ids[A], "03", A)
    report = await eventually(
        lambda: stub.VerifyAudit(pb.VerifyAuditRequest(), metadata=OBSERVER),
        until=lambda r: r.entries_checked >= 4,  # submitted, created, arrived 01, registered 03
    )
    assert report.intact, report.problem
    entries = service.db["audit"]
    victim = await entries.find_one({"event_type": "delivery.status.changed"}, sort=[("seq", -1)])
    assert victim is not None
    await entries.update_one({"_id": victim["_id"]}, {"$set": {"producer": "someone-else"}})
    report = await stub.VerifyAudit(pb.VerifyAuditRequest(), metadata=OBSERVER)
    assert not report.intact
    assert report.first_broken_entry == victim["_id"]
    assert "does not match its hash" in report.problem


async def test_arrival_is_announced_with_status_01(
    stub: DocumentServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    document = await submit(stub, recipients={"unit_codes": [A]})
    await deliver(service, stub, document, A)
    records = await topic_reader(service.topics.deliveries, 2)
    types = [decode_envelope(r.value).event_type for r in records]
    assert types == ["delivery.created", "delivery.status.changed"]
    arrived = unpack(decode_envelope(records[1].value), DeliveryStatusChanged)
    assert (arrived.recipient_code, arrived.status_code) == (A, "01")


# --- signature verdicts and returned documents --------------------------------------------


async def test_a_rejected_verdict_is_kept_and_each_recipient_shows_02_with_the_reason(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    document = await submit(stub, recipients={"unit_codes": [A, B]})
    report = SignatureReport(
        file_name="quyet-dinh.pdf",
        index=0,
        signer_kind=SignerKind.SIGNER_KIND_PERSON,
        signer_subject="CN=Nguyễn Văn An",
        valid=False,
        reason="the certificate was revoked",
    )
    verified = DocumentVerified(
        document=document,
        verdict=Verdict.VERDICT_REJECTED,
        reason="signature verification refused the document: the certificate was revoked",
        failed_rule="signatures-valid",
        signatures=[report],
    )
    envelope = new_event(verified, producer="signature-service")
    for _ in range(2):  # a redelivered verdict changes nothing
        await service.producer.publish(
            service.topics.verifications, key=document.document_id, envelope=envelope
        )
    for recipient in (A, B):  # routing-service bounces every recipient of a rejected document
        bounce = DeliveryBounced(
            delivery_id=f"{document.document_id}/{recipient}",
            document=document,
            recipient_code=recipient,
            reason=verified.reason,
        )
        await service.producer.publish(
            service.topics.deliveries,
            key=recipient,
            envelope=new_event(bounce, producer="routing-service"),
        )
    tracked = await eventually(
        lambda: stub.TrackDocument(
            pb.TrackDocumentRequest(document_id=document.document_id), metadata=unit(SENDER)
        ),
        until=lambda reply: reply.HasField("verification") and len(reply.recipients) == 2,
    )
    assert tracked.verification.verdict == Verdict.VERDICT_REJECTED
    assert tracked.verification.failed_rule == "signatures-valid"
    assert list(tracked.verification.signatures) == [report]
    assert {(r.recipient_code, r.status_code) for r in tracked.recipients} == {
        (A, "02"),
        (B, "02"),
    }
    assert all("revoked" in r.bounce_reason for r in tracked.recipients)
    shown = await stub.GetDocument(
        pb.GetDocumentRequest(document_id=document.document_id), metadata=unit(SENDER)
    )
    assert shown.verification.reason == verified.reason
    inbox = await stub.ListInbox(pb.ListInboxRequest(), metadata=unit(A))
    assert document.document_id not in {e.document.document_id for e in inbox.entries}
