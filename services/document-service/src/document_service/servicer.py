"""The DocumentService gRPC API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from grpc import aio

from document_service.store import DocumentStore
from document_service.validation import parse_date, validate_submission
from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceServicer
from lienthong.events.v1.events_pb2 import DocumentSubmitted
from lienthong_kit.context import caller_unit
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import NotFound, PermissionDenied
from lienthong_kit.kafka import Topics
from lienthong_kit.outbox import OutboxRelay
from lienthong_kit.paging import decode_token, encode_token, page_size

__all__ = ["VN_TIME", "DocumentServicer"]

VN_TIME = timezone(timedelta(hours=7), "ICT")
PRODUCER = "document-service"
Context = aio.ServicerContext[Any, Any]


class DocumentServicer(DocumentServiceServicer):
    def __init__(self, store: DocumentStore, relay: OutboxRelay, topics: Topics) -> None:
        self._store = store
        self._relay = relay
        self._topics = topics

    async def SubmitDocument(
        self, request: pb.SubmitDocumentRequest, context: Context
    ) -> pb.SubmitDocumentResponse:
        sender = caller_unit()
        now = datetime.now(UTC)
        validate_submission(request, sender, now.astimezone(VN_TIME).date())
        promulgated = parse_date(request.promulgation_date) or now.date()  # validated above
        summary = DocumentSummary(
            document_id=str(uuid.uuid4()),
            edxml_document_id=(
                f"{sender},{promulgated:%Y/%m/%d},{request.code.number}/{request.code.notation}"
            ),
            sender_code=sender,
            code=request.code,
            document_type=request.document_type,
            subject=request.subject.strip(),
            priority=request.priority,
            promulgation_date=request.promulgation_date,
        )
        if request.HasField("due_at"):
            summary.due_at.CopyFrom(request.due_at)
        summary.submitted_at.FromDatetime(now)
        event = new_event(
            DocumentSubmitted(document=summary, recipients=request.recipients), producer=PRODUCER
        )
        stored = await self._store.insert_submitted(
            summary,
            request.recipients,
            request.content_summary,
            request.idempotency_key,
            (self._topics.documents, summary.document_id, event),
        )
        self._relay.wake()
        return pb.SubmitDocumentResponse(document=stored)

    async def GetDocument(
        self, request: pb.GetDocumentRequest, context: Context
    ) -> pb.GetDocumentResponse:
        unit = caller_unit()
        document = await self._store.get(request.document_id)
        if document is None:
            raise NotFound(f"document_id: no document {request.document_id!r}")
        is_sender = document.summary.sender_code == unit
        if not is_sender and not await self._store.is_recipient(request.document_id, unit):
            raise PermissionDenied(f"{unit} neither sent nor received {request.document_id}")
        response = pb.GetDocumentResponse(
            document=document.summary, content_summary=document.content_summary
        )
        if is_sender:
            response.recipients.CopyFrom(document.recipients)
            for delivery in await self._store.deliveries_of(request.document_id):
                response.recipient_states.add(
                    recipient_code=delivery["recipient_code"],
                    status_code=delivery["status_code"],
                    bounce_reason=delivery["bounce_reason"],
                )
        return response

    async def ListInbox(
        self, request: pb.ListInboxRequest, context: Context
    ) -> pb.ListInboxResponse:
        unit = caller_unit()
        size = page_size(request.page_size, default=50, maximum=200)
        token = decode_token(request.page_token)
        after = (datetime.fromisoformat(token[0]), token[1]) if len(token) == 2 else None
        rows = await self._store.inbox_page(unit, after=after, limit=size + 1)
        response = pb.ListInboxResponse()
        for row in rows[:size]:
            entry = response.entries.add(
                delivery_id=row["_id"],
                document=DocumentSummary.FromString(bytes(row["summary"])),
                status_code=row["status_code"],
            )
            entry.delivered_at.FromDatetime(row["delivered_at"])
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_token(last["delivered_at"].isoformat(), last["_id"])
        return response
