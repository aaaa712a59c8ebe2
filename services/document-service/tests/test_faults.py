"""Faults while a write is in flight: the caller goes away, the store's reply is lost. Whatever
the caller saw, a document that was stored reaches every inbox exactly once and the audit log.

document-service and routing-service run in-process on the real broker and store; the test acts
as signature-service (it accepts every submitted document)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect

from document_service.__main__ import Settings, build
from lienthong.common.v1.common_pb2 import DocumentSummary, Verdict
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import (
    DeliveryStatusChanged,
    DocumentSubmitted,
    DocumentVerified,
)
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.envelope import carries, decode_envelope, new_event, unpack
from lienthong_kit.server import ServiceApp
from lienthong_local.sample import PROVINCE, sample_units
from lienthong_testing.callers import REGISTRY_ADMIN
from lienthong_testing.waiting import eventually
from routing_service.__main__ import build as build_routing
from routing_service.settings import Settings as RoutingSettings

SENDER = PROVINCE
RECIPIENTS = ["000.01.00.H23", "000.00.31.H23"]


def unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


def request(number: int, **overrides: Any) -> pb.SubmitDocumentRequest:
    fields: dict[str, Any] = {
        "recipients": {"unit_codes": RECIPIENTS},
        "code": {"number": str(number), "notation": "CV-UBND"},
        "subject": "Về việc kiểm tra khi gặp sự cố",
        "promulgation_date": "2026-11-20",
        **overrides,
    }
    return pb.SubmitDocumentRequest(**fields)


@pytest.fixture
async def document_service(start_service: Any) -> ServiceApp:
    routing: ServiceApp = await start_service("routing-service", build_routing, RoutingSettings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{routing.grpc_port}") as channel:
        rows = (routing_pb.ImportRegistryRequest(unit=row) for row in sample_units())
        await RoutingServiceStub(channel).ImportRegistry(rows, metadata=REGISTRY_ADMIN)
    app: ServiceApp = await start_service(
        "document-service", build, Settings, {"LIENTHONG_OUTBOX_UNCONFIRMED_SECONDS": "1"}
    )
    return app


@pytest.fixture
async def stub(document_service: ServiceApp) -> AsyncIterator[DocumentServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{document_service.grpc_port}") as channel:
        yield DocumentServiceStub(channel)


Insert = Callable[..., Awaitable[Any]]


def hold(monkeypatch: pytest.MonkeyPatch, method: str, collection: str) -> tuple[Any, Any]:
    """Make the next ``method`` on ``collection`` wait until released: (entered, release)."""
    entered, release = asyncio.Event(), asyncio.Event()
    original: Insert = getattr(AsyncCollection, method)

    async def held(self: AsyncCollection[Any], *args: Any, **kwargs: Any) -> Any:
        if self.name == collection and not release.is_set():
            entered.set()
            await release.wait()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, method, held)
    return entered, release


async def accept_submitted(app: ServiceApp, topic_reader: Any, count: int) -> list[str]:
    """Act as signature-service: accept the submitted documents; their event ids."""
    records = await topic_reader(app.topics.documents, count)
    event_ids = []
    for record in records:
        envelope = decode_envelope(record.value)
        submitted = unpack(envelope, DocumentSubmitted)
        verified = DocumentVerified(
            document=submitted.document,
            recipients=submitted.recipients,
            verdict=Verdict.VERDICT_ACCEPTED,
        )
        await app.producer.publish(
            app.topics.verifications,
            key=submitted.document.document_id,
            envelope=new_event(verified, producer="signature-service"),
        )
        event_ids.append(envelope.event_id)
    return event_ids


async def in_every_inbox_once(stub: DocumentServiceStub, document_id: str) -> dict[str, str]:
    """Wait until each recipient lists ``document_id``; check it is listed once; delivery ids."""
    found = {}
    for recipient in RECIPIENTS:
        reply = await eventually(
            lambda recipient=recipient: stub.ListInbox(
                pb.ListInboxRequest(), metadata=unit(recipient)
            ),
            until=lambda reply: any(e.document.document_id == document_id for e in reply.entries),
        )
        entries = [e for e in reply.entries if e.document.document_id == document_id]
        assert len(entries) == 1, entries
        found[recipient] = entries[0].delivery_id
    return found


async def audited(app: ServiceApp, event_id: str) -> None:
    await eventually(
        lambda: app.db["audit"].find_one({"_id": event_id}), until=lambda row: row is not None
    )


async def test_a_submission_cancelled_while_its_insert_is_in_flight_is_delivered(
    stub: DocumentServiceStub,
    document_service: ServiceApp,
    topic_reader: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered, release = hold(monkeypatch, "insert_many", "documents")
    call = stub.SubmitDocument(request(1), metadata=unit(SENDER))
    await entered.wait()
    call.cancel()  # the client's deadline or cancellation lands while the insert is in flight
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    (event_id,) = await accept_submitted(document_service, topic_reader, 1)
    submitted = unpack(
        decode_envelope((await topic_reader(document_service.topics.documents, 1))[0].value),
        DocumentSubmitted,
    )
    await in_every_inbox_once(stub, submitted.document.document_id)
    await audited(document_service, event_id)


async def test_an_acknowledgement_cancelled_while_its_insert_is_in_flight_is_tracked(
    stub: DocumentServiceStub,
    document_service: ServiceApp,
    topic_reader: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = await stub.SubmitDocument(request(2), metadata=unit(SENDER))
    await accept_submitted(document_service, topic_reader, 1)
    deliveries = await in_every_inbox_once(stub, sent.document.document_id)
    recipient = RECIPIENTS[0]
    entered, release = hold(monkeypatch, "insert_one", "delivery_transitions")
    call = stub.AcknowledgeDelivery(
        pb.AcknowledgeDeliveryRequest(
            delivery_id=deliveries[recipient], status_code="03", staff="Văn thư"
        ),
        metadata=unit(recipient),
    )
    await entered.wait()
    call.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    tracked = await eventually(
        lambda: stub.TrackDocument(
            pb.TrackDocumentRequest(document_id=sent.document.document_id),
            metadata=unit(SENDER),
        ),
        until=lambda reply: any(
            r.recipient_code == recipient and r.status_code == "03" for r in reply.recipients
        ),
    )
    assert [r.status_code for r in tracked.recipients if r.recipient_code == recipient] == ["03"]
    changes = [
        decode_envelope(record.value)
        for record in await topic_reader(document_service.topics.deliveries, 5)
    ]
    acknowledged = [
        envelope
        for envelope in changes
        if carries(envelope, DeliveryStatusChanged)
        and unpack(envelope, DeliveryStatusChanged).status_code == "03"
    ]
    assert len({envelope.event_id for envelope in acknowledged}) == 1
    await audited(document_service, acknowledged[0].event_id)


async def test_a_submission_whose_store_reply_is_lost_is_delivered_once(
    stub: DocumentServiceStub,
    document_service: ServiceApp,
    topic_reader: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original: Insert = AsyncCollection.insert_many
    lost: list[DocumentSummary] = []

    async def reply_lost(self: AsyncCollection[Any], documents: Any, *args: Any, **kw: Any) -> Any:
        result = await original(self, documents, *args, **kw)
        if self.name == "documents" and not lost:
            lost.append(DocumentSummary.FromString(bytes(documents[0]["summary"])))
            raise AutoReconnect("connection closed after the write (the reply was lost)")
        return result

    monkeypatch.setattr(AsyncCollection, "insert_many", reply_lost)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitDocument(request(3, idempotency_key="lost-1"), metadata=unit(SENDER))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # retryable, not INTERNAL
    # announced without any retry (the relay looks the uncertain insert up) ...
    (event_id,) = await accept_submitted(document_service, topic_reader, 1)
    (stored,) = lost
    await in_every_inbox_once(stub, stored.document_id)
    # ... and a retry with the same key answers the stored document, delivered still once
    again = await stub.SubmitDocument(request(3, idempotency_key="lost-1"), metadata=unit(SENDER))
    assert again.document.document_id == stored.document_id
    await accept_submitted(document_service, topic_reader, 2)
    await in_every_inbox_once(stub, stored.document_id)
    await audited(document_service, event_id)
