"""Hostile input and faults against document-service's real server, broker and store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pymongo.errors import OperationFailure

from document_service.__main__ import Settings, build
from document_service.attachments import AttachmentStore
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import DocumentSubmitted, UnitChanged
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_kit.envelope import decode_envelope, new_event, unpack
from lienthong_kit.kafka import Topics
from lienthong_kit.mongo import connect
from lienthong_kit.server import ServiceApp
from lienthong_kit.settings import KitSettings
from lienthong_testing.callers import OBSERVER
from lienthong_testing.waiting import eventually

SENDER = "000.00.00.H23"
OPERATOR = OBSERVER
RECIPIENTS = ["000.01.00.H23", "000.00.31.H23"]


def as_unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


def request(**overrides: Any) -> pb.SubmitDocumentRequest:
    fields: dict[str, Any] = {
        "recipients": {"unit_codes": RECIPIENTS},
        "code": {"number": "15", "notation": "QĐ-UBND"},
        "document_type": "QĐ",
        "subject": "Về việc triển khai liên thông văn bản",
        "promulgation_date": "2026-11-20",
        **overrides,
    }
    return pb.SubmitDocumentRequest(**fields)


def violated_fields(error: grpc.aio.AioRpcError) -> list[str]:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [violation.field for violation in bad_request.field_violations]


async def test_oversized_fields_are_invalid_arguments_naming_them(
    stub: DocumentServiceStub,
) -> None:
    huge = "x" * 100_000
    calls: list[tuple[Any, Any, list[str]]] = [
        (
            stub.SubmitDocument,
            request(content_summary=huge, idempotency_key=huge, attachment_ids=["a"] * 20_000),
            ["idempotency_key", "content_summary", "attachment_ids"],
        ),
        (
            stub.RegisterPaperDocument,
            pb.RegisterPaperDocumentRequest(
                direction=pb.Direction.DIRECTION_INCOMING,
                counterpart=huge,
                subject="Về việc",
                code={"number": "1", "notation": "CV"},
            ),
            ["counterpart"],
        ),
        (
            stub.AcknowledgeDelivery,
            pb.AcknowledgeDeliveryRequest(
                delivery_id="d", status_code="03", description=huge, staff=huge
            ),
            ["description", "staff"],
        ),
        (
            stub.RecallDocument,
            pb.RecallDocumentRequest(
                document_id="d", business_type=pb.BusinessType.BUSINESS_TYPE_RECALL, reason=huge
            ),
            ["reason"],
        ),
        (stub.ListInbox, pb.ListInboxRequest(status_codes=["01"] * 1000), ["status_codes"]),
        (stub.GetDocument, pb.GetDocumentRequest(document_id=huge), ["document_id"]),
        (stub.TrackDocument, pb.TrackDocumentRequest(document_id=huge), ["document_id"]),
    ]
    for method, message, fields in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await method(message, metadata=as_unit(SENDER))
        assert violated_fields(info.value) == fields, method


async def test_a_reused_idempotency_key_with_another_request_is_refused_naming_the_first(
    stub: DocumentServiceStub,
) -> None:
    first = await stub.SubmitDocument(request(idempotency_key="k-1"), metadata=as_unit(SENDER))
    other = request(idempotency_key="k-1", code={"number": "16", "notation": "QĐ-UBND"})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitDocument(other, metadata=as_unit(SENDER))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert first.document.document_id in (info.value.details() or "")
    paper = pb.RegisterPaperDocumentRequest(
        idempotency_key="p-1",
        direction=pb.Direction.DIRECTION_INCOMING,
        counterpart="Sở Tài chính",
        subject="Về việc",
        code={"number": "1", "notation": "CV"},
    )
    registered = await stub.RegisterPaperDocument(paper, metadata=as_unit(SENDER))
    paper.subject = "Về việc khác"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RegisterPaperDocument(paper, metadata=as_unit(SENDER))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert registered.paper_document_id in (info.value.details() or "")


async def test_an_idempotent_retry_announces_the_document_again(
    stub: DocumentServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    # the first announcement may have been lost; consumers skip the repeated event id
    first = await stub.SubmitDocument(request(idempotency_key="k-2"), metadata=as_unit(SENDER))
    again = await stub.SubmitDocument(request(idempotency_key="k-2"), metadata=as_unit(SENDER))
    assert again.document == first.document
    records = await topic_reader(service.topics.documents, 2)
    envelopes = [decode_envelope(record.value) for record in records]
    assert envelopes[0].event_id == envelopes[1].event_id
    assert unpack(envelopes[1], DocumentSubmitted).document == first.document


def many_recipients(count: int) -> list[str]:
    return [f"000.{index // 100:02d}.{index % 100:02d}.H23" for index in range(1, count + 1)]


async def test_an_event_over_the_event_limit_is_refused_before_anything_is_stored(
    start_service: Any,
) -> None:
    app = await start_service(
        "document-service", build, Settings, {"LIENTHONG_EVENT_MAX_BYTES": "2000"}
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = DocumentServiceStub(channel)
        big = request(recipients={"unit_codes": many_recipients(300)})
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitDocument(big, metadata=as_unit(SENDER))
        assert violated_fields(info.value) == ["request"]
        # nothing stored: the same number is still free
        await stub.SubmitDocument(request(), metadata=as_unit(SENDER))


async def test_the_relay_parks_an_event_the_broker_refuses_and_publishes_the_next(
    settings: KitSettings, start_service: Any, topic_reader: Any
) -> None:
    topics = Topics(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:  # a topic whose records are limited below what document-service allows
        await admin.create_topics(
            [NewTopic(topics.documents, 1, 1, topic_configs={"max.message.bytes": "2048"})]
        )
    finally:
        await admin.close()
    app = await start_service("document-service", build, Settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = DocumentServiceStub(channel)
        big = request(recipients={"unit_codes": many_recipients(300)})
        refused = await stub.SubmitDocument(big, metadata=as_unit(SENDER))
        small = [
            await stub.SubmitDocument(
                request(code={"number": str(n), "notation": "CV"}), metadata=as_unit(SENDER)
            )
            for n in range(20, 23)
        ]
        records = await topic_reader(topics.documents, 3)
        published = [unpack(decode_envelope(r.value), DocumentSubmitted) for r in records]
        assert [p.document.document_id for p in published] == [
            s.document.document_id for s in small
        ]
        parked = await stub.ListParkedEvents(pb.ListParkedEventsRequest(), metadata=OPERATOR)
        (event,) = parked.events
        assert event.topic == topics.documents
        assert event.key == refused.document.document_id
        assert "MessageSizeTooLarge" in event.reason
        assert event.size_bytes > 2048


async def upload(stub: DocumentServiceStub, content: bytes) -> str:
    async def parts() -> AsyncIterator[pb.UploadAttachmentRequest]:
        yield pb.UploadAttachmentRequest(
            header=pb.AttachmentHeader(name="qd.pdf", mime_type="application/pdf")
        )
        yield pb.UploadAttachmentRequest(chunk=content)

    reply = await stub.UploadAttachment(parts(), metadata=as_unit(SENDER))
    return reply.attachment.attachment_id


async def test_a_documents_attachments_are_capped_together_and_unused_ones_removed(
    start_service: Any,
) -> None:
    app = await start_service(
        "document-service",
        build,
        Settings,
        {
            "LIENTHONG_DOCUMENT_ATTACHMENTS_MAX_BYTES": "1000",
            "LIENTHONG_ATTACHMENT_UNREFERENCED_SECONDS": "1",
        },
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = DocumentServiceStub(channel)
        first, second, unused = [await upload(stub, b"%PDF-1.7 " + b"x" * 591) for _ in range(3)]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitDocument(
                request(attachment_ids=[first, second]), metadata=as_unit(SENDER)
            )
        assert violated_fields(info.value) == ["attachment_ids"]
        sent = await stub.SubmitDocument(request(attachment_ids=[first]), metadata=as_unit(SENDER))
        files = app.db["attachments.files"]
        await eventually(
            lambda: files.count_documents({"_id": {"$in": [second, unused]}}),
            until=lambda left: left == 0,
        )
        assert await files.count_documents({"_id": first}) == 1
        chunks = stub.GetAttachment(
            pb.GetAttachmentRequest(document_id=sent.document.document_id, attachment_id=first),
            metadata=as_unit(SENDER),
        )
        assert len([part async for part in chunks]) == 2  # the reference and its one chunk


async def test_the_audit_log_dead_letters_what_cannot_be_an_entry_and_goes_on(
    settings: KitSettings, start_service: Any, raw_producer: Any, topic_reader: Any
) -> None:
    topics = Topics(settings.topic_prefix)
    app = await start_service("document-service", build, Settings)
    unit = UnitChanged(unit=Unit(code="000.00.77.H23", name="Sở Thử"), actor="operator/a")
    hostile = {
        "far": new_event(unit, producer="routing-service"),
        "nul": new_event(UnitChanged(unit=unit.unit, actor="bad\x00actor"), producer="x"),
        "garbage": None,
    }
    hostile["far"].occurred_at.seconds = 2**62  # outside any calendar
    fine = new_event(unit, producer="routing-service")
    for key, envelope in hostile.items():
        value = b"\x08\x96\x01 garbage" if envelope is None else envelope.SerializeToString()
        await raw_producer.send_and_wait(topics.units, value, key=f"hostile-{key}".encode())
    await raw_producer.send_and_wait(topics.units, fine.SerializeToString(), key=b"fine")

    # the event after them is in the audit log: nothing jammed the consumer
    await eventually(
        lambda: app.db["audit"].find_one({"_id": fine.event_id}), until=bool, timeout=60
    )
    letters = await topic_reader(Topics.dlq(topics.units), 3, timeout=60)
    reasons = {
        r.key.decode(): dict(r.headers)["lienthong-dlq-reason"].decode()
        for r in letters
        if dict(r.headers)["lienthong-consumer-group"].decode().endswith("-audit")
    }
    assert "occurred_at is not a time" in reasons["hostile-far"]
    assert "actor holds a NUL character" in reasons["hostile-nul"]
    assert "not a protobuf EventEnvelope" in reasons["hostile-garbage"]


async def test_the_attachment_sweep_outlives_the_store_being_down(settings: KitSettings) -> None:
    client = connect(settings.mongo_url, app_name="test")
    db = client[f"{settings.mongo_database_prefix}document"]
    attachments = AttachmentStore(db, max_bytes=1000, unreferenced_seconds=0.001)

    async def content() -> AsyncIterator[bytes]:
        yield b"%PDF-1.7 unused"

    unused = await attachments.upload(SENDER, "qd.pdf", "application/pdf", content())
    asked: list[list[str]] = []

    async def referenced(ids: list[str]) -> set[str]:
        asked.append(ids)
        if len(asked) == 1:  # as FerretDB answers while its PostgreSQL restarts
            raise OperationFailure(
                "failed to connect to `user=postgres database=ferretdb`: server error: FATAL:"
                " the database system is starting up (SQLSTATE 57P03)",
                code=1,
            )
        return set()

    files = db["attachments.files"]
    sweep = asyncio.create_task(attachments.sweep(referenced))
    try:
        # the round after the outage removes it: the outage did not end the sweep
        await eventually(
            lambda: files.count_documents({"_id": unused.attachment_id}),
            until=lambda left: left == 0,
            timeout=60,
        )
        assert not sweep.done()
    finally:
        sweep.cancel()
        await client.close()
