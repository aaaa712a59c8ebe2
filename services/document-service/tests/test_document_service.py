"""document-service's real gRPC server against the real broker and store."""

from __future__ import annotations

import base64
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import (
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentSubmitted,
)
from lienthong_kit.envelope import carries, decode_envelope, new_event, unpack
from lienthong_kit.kafka import Topics
from lienthong_kit.paging import encode_token
from lienthong_kit.server import ServiceApp
from lienthong_testing.waiting import eventually

SENDER = "000.00.00.H23"
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


async def test_submit_stores_and_publishes_the_submitted_event(
    stub: DocumentServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    reply = await stub.SubmitDocument(request(), metadata=as_unit(SENDER))
    document = reply.document
    assert document.sender_code == SENDER
    assert document.edxml_document_id == f"{SENDER},2026/11/20,15/QĐ-UBND"
    (record,) = await topic_reader(service.topics.documents, 1)
    assert record.key == document.document_id.encode()
    published = unpack(decode_envelope(record.value), DocumentSubmitted)
    assert published.document == document
    assert list(published.recipients.unit_codes) == RECIPIENTS


async def test_a_retry_with_the_same_idempotency_key_returns_the_first_result(
    stub: DocumentServiceStub,
) -> None:
    first = await stub.SubmitDocument(request(idempotency_key="k-1"), metadata=as_unit(SENDER))
    again = await stub.SubmitDocument(request(idempotency_key="k-1"), metadata=as_unit(SENDER))
    assert again.document.document_id == first.document.document_id


async def test_a_second_document_with_the_same_number_is_refused(stub: DocumentServiceStub) -> None:
    first = await stub.SubmitDocument(request(idempotency_key="a"), metadata=as_unit(SENDER))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitDocument(request(idempotency_key="b"), metadata=as_unit(SENDER))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first.document.document_id in (info.value.details() or "")


async def test_invalid_requests_name_the_field(stub: DocumentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitDocument(request(subject=""), metadata=as_unit(SENDER))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["subject"]


async def test_a_call_without_a_unit_is_unauthenticated(stub: DocumentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitDocument(request())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_routed_delivery_appears_in_the_inbox_with_status_arrived(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    submitted = (await stub.SubmitDocument(request(), metadata=as_unit(SENDER))).document
    delivery = DeliveryCreated(delivery_id="dl-1", document=submitted, recipient_code=RECIPIENTS[0])
    envelope = new_event(delivery, producer="routing-service")
    for _ in range(2):  # redelivered: still one inbox entry
        await service.producer.publish(
            service.topics.deliveries, key=RECIPIENTS[0], envelope=envelope
        )
    inbox = await eventually(
        lambda: stub.ListInbox(pb.ListInboxRequest(), metadata=as_unit(RECIPIENTS[0])),
        until=lambda reply: len(reply.entries) >= 1,
    )
    assert [(e.delivery_id, e.status_code) for e in inbox.entries] == [("dl-1", "01")]
    assert inbox.entries[0].document.document_id == submitted.document_id
    other = await stub.ListInbox(pb.ListInboxRequest(), metadata=as_unit(RECIPIENTS[1]))
    assert list(other.entries) == []


async def test_deliveries_written_a_poll_at_a_time_are_in_the_inbox_once_and_announced_once(
    stub: DocumentServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    submitted = (await stub.SubmitDocument(request(), metadata=as_unit(SENDER))).document
    ids = [f"dl-poll-{number:02d}" for number in range(40)]
    records = [
        (
            RECIPIENTS[0].encode(),
            new_event(
                DeliveryCreated(
                    delivery_id=delivery, document=submitted, recipient_code=RECIPIENTS[0]
                ),
                producer="routing-service",
            ).SerializeToString(),
        )
        for delivery in ids
    ]
    for _ in range(2):  # the whole batch redelivered, as after a crash before the commit
        await service.producer.publish_batch(service.topics.deliveries, records)
    # one more behind them on the same partition: once it is in, the repeats were applied
    last = DeliveryCreated(
        delivery_id="dl-poll-last", document=submitted, recipient_code=RECIPIENTS[0]
    )
    await service.producer.publish(
        service.topics.deliveries,
        key=RECIPIENTS[0],
        envelope=new_event(last, producer="routing-service"),
    )
    inbox = await eventually(
        lambda: stub.ListInbox(pb.ListInboxRequest(page_size=100), metadata=as_unit(RECIPIENTS[0])),
        until=lambda reply: "dl-poll-last" in {entry.delivery_id for entry in reply.entries},
    )
    assert sorted(entry.delivery_id for entry in inbox.entries) == [*ids, "dl-poll-last"]
    assert {entry.status_code for entry in inbox.entries} == {"01"}
    # 81 deliveries, then one arrival event per delivery (never one per redelivery)
    published = await topic_reader(service.topics.deliveries, 81 + 41)
    arrivals = [
        unpack(envelope, DeliveryStatusChanged).delivery_id
        for envelope in (decode_envelope(record.value) for record in published)
        if carries(envelope, DeliveryStatusChanged)
    ]
    assert sorted(arrivals) == [*ids, "dl-poll-last"]


async def test_only_the_sender_and_recipients_read_a_document(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    submitted = (await stub.SubmitDocument(request(), metadata=as_unit(SENDER))).document
    mine = await stub.GetDocument(
        pb.GetDocumentRequest(document_id=submitted.document_id), metadata=as_unit(SENDER)
    )
    assert list(mine.recipients.unit_codes) == RECIPIENTS
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetDocument(
            pb.GetDocumentRequest(document_id=submitted.document_id),
            metadata=as_unit("000.02.00.H23"),
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_inbox_pages_do_not_overlap(stub: DocumentServiceStub, service: ServiceApp) -> None:
    recipient = RECIPIENTS[0]
    for index in range(5):
        submitted = (
            await stub.SubmitDocument(
                request(code={"number": str(index + 1), "notation": "TB-UBND"}),
                metadata=as_unit(SENDER),
            )
        ).document
        delivery = DeliveryCreated(
            delivery_id=f"dl-{index}", document=submitted, recipient_code=recipient
        )
        await service.producer.publish(
            Topics(service.topics.prefix).deliveries,
            key=recipient,
            envelope=new_event(delivery, producer="routing-service"),
        )
    await eventually(
        lambda: stub.ListInbox(pb.ListInboxRequest(page_size=50), metadata=as_unit(recipient)),
        until=lambda reply: len(reply.entries) == 5,
    )
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListInbox(
            pb.ListInboxRequest(page_size=2, page_token=token), metadata=as_unit(recipient)
        )
        seen.extend(entry.delivery_id for entry in page.entries)
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"dl-{index}" for index in range(5)]


BAD_PAGE_TOKENS = {
    "not base64": "not base64!",
    "base64 of non-JSON": base64.urlsafe_b64encode(b"not json").decode(),
    "one part, not two": encode_token("2026-11-20T08:00:00+00:00"),
    "three parts": encode_token("2026-11-20T08:00:00+00:00", "dl-1", "extra"),
    "a bad timestamp": encode_token("yesterday", "dl-1"),
}


async def test_list_inbox_answers_a_bad_page_token_naming_the_field(
    stub: DocumentServiceStub,
) -> None:
    for what, token in BAD_PAGE_TOKENS.items():
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListInbox(
                pb.ListInboxRequest(page_token=token), metadata=as_unit(RECIPIENTS[0])
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        status = rpc_status.from_call(info.value)
        assert status is not None, what
        bad_request = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad_request), what
        assert [v.field for v in bad_request.field_violations] == ["page_token"], what
