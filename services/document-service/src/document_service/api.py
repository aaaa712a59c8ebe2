"""The DocumentService gRPC API: validate, call the store, map records to protobuf."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from document_service.attachments import AttachmentStore
from document_service.checkpoints import SignedAudit
from document_service.lifecycle import acknowledge, request_recall
from document_service.store import (
    PRODUCER,
    Delivery,
    Document,
    DocumentStore,
    PaperDocument,
    Recall,
    Signer,
    Verification,
)
from document_service.validation import (
    parse_date,
    validate_acknowledgement,
    validate_id,
    validate_inbox_query,
    validate_paper,
    validate_recall,
    validate_submission,
)
from lienthong.common.v1.common_pb2 import AttachmentRef, DocumentSummary
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceServicer
from lienthong.events.v1.events_pb2 import DocumentSubmitted, PaperDocumentRegistered
from lienthong_kit.authz import Kind, current_identity
from lienthong_kit.context import caller_unit
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from lienthong_kit.fanout import FanOutHub
from lienthong_kit.paging import decode_time_key, encode_time_key, page_size
from lienthong_kit.vocabulary import Priority, StatusCode, today_in_vietnam, vietnam_time

__all__ = ["DocumentServicer"]

Context = aio.ServicerContext[Any, Any]
MAX_PARKED_PAGE = 500
#: CountPendingDeliveries: units per call, characters per code, document ids shown per unit
MAX_PENDING_UNITS, MAX_UNIT_CODE, PENDING_SAMPLE = 500, 64, 20
RECALL_KINDS = {
    pb.BusinessType.BUSINESS_TYPE_RECALL,
    pb.BusinessType.BUSINESS_TYPE_UPDATE,
    pb.BusinessType.BUSINESS_TYPE_REPLACE,
}


def _entry(delivery: Delivery) -> pb.InboxEntry:
    entry = pb.InboxEntry(
        delivery_id=delivery.id,
        document=delivery.document,
        status_code=delivery.status_code,
        read=delivery.read_at is not None,
        recall_status=delivery.recall_status,
    )
    entry.delivered_at.FromDatetime(delivery.delivered_at)
    return entry


class DocumentServicer(DocumentServiceServicer):
    def __init__(
        self,
        store: DocumentStore,
        attachments: AttachmentStore,
        audit: SignedAudit,
        hub: FanOutHub[Delivery],
    ) -> None:
        self._store = store
        self._attachments = attachments
        self._audit = audit
        self._hub = hub

    # --- sending --------------------------------------------------------------------------

    async def UploadAttachment(
        self, request_iterator: AsyncIterator[pb.UploadAttachmentRequest], context: Context
    ) -> pb.UploadAttachmentResponse:
        owner = caller_unit()
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("header"):
            raise InvalidArgument(
                [FieldViolation("header", "the first message carries the header")]
            )

        async def chunks() -> AsyncIterator[bytes]:
            async for part in request_iterator:
                if not part.HasField("chunk"):
                    raise InvalidArgument(
                        [FieldViolation("header", "only the first message has one")]
                    )
                yield part.chunk

        ref = await self._attachments.upload(
            owner, first.header.name, first.header.mime_type, chunks()
        )
        return pb.UploadAttachmentResponse(attachment=ref)

    async def SubmitDocument(
        self, request: pb.SubmitDocumentRequest, context: Context
    ) -> pb.SubmitDocumentResponse:
        sender = caller_unit()
        now = datetime.now(UTC)
        validate_submission(request, sender, today_in_vietnam(now))
        attachments = await self._check_references(request, sender)
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
            DocumentSubmitted(
                document=summary, recipients=request.recipients, attachments=attachments
            ),
            producer=PRODUCER,
        )
        document = Document(
            summary=summary,
            recipients=request.recipients,
            content_summary=request.content_summary,
            to_places=tuple(request.to_places),
            promulgation_place=request.promulgation_place,
            signer=Signer(
                competence=request.signer.competence,
                position=request.signer.position,
                full_name=request.signer.full_name,
            ),
            steering_type=request.steering_type,
            response_for=request.response_for,
            attachments=tuple(attachments),
        )
        stored = await self._store.submit(
            document, request.idempotency_key, event, _fingerprint(request)
        )
        return pb.SubmitDocumentResponse(document=stored)

    async def _check_references(
        self, request: pb.SubmitDocumentRequest, sender: str
    ) -> list[AttachmentRef]:
        problems: list[FieldViolation] = []
        if request.response_for and not await self._may_read(request.response_for, sender):
            problems.append(
                FieldViolation("response_for", f"{sender} has no document {request.response_for!r}")
            )
        ids = list(request.attachment_ids)
        owned = await self._attachments.owned(sender, ids) if ids else {}
        for index, attachment_id in enumerate(ids):
            if attachment_id not in owned:
                problems.append(
                    FieldViolation(
                        f"attachment_ids[{index}]",
                        f"no attachment {attachment_id!r} uploaded by {sender}",
                    )
                )
        if problems:
            raise InvalidArgument(problems)
        total = sum(owned[attachment_id].size_bytes for attachment_id in ids)
        if total > self._attachments.max_total_bytes:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "attachment_ids",
                        f"the attachments hold {total} bytes together; a document takes at most"
                        f" {self._attachments.max_total_bytes}",
                    )
                ]
            )
        return [owned[attachment_id] for attachment_id in ids]

    async def _may_read(self, document_id: str, unit: str) -> bool:
        document = await self._store.get(document_id)
        if document is None:
            return False
        return document.sender_code == unit or (
            await self._store.delivery_for(document_id, unit) is not None
        )

    async def ReserveNumber(
        self, request: pb.ReserveNumberRequest, context: Context
    ) -> pb.ReserveNumberResponse:
        unit = caller_unit()
        series = request.series.strip()
        if not series or len(series) > 30:
            raise InvalidArgument([FieldViolation("series", "1 to 30 characters, e.g. QĐ-UBND")])
        year = vietnam_time(datetime.now(UTC)).year
        number = await self._store.reserve_number(unit, year, series)
        return pb.ReserveNumberResponse(series=series, year=year, number=f"{number:02d}")

    async def RegisterPaperDocument(
        self, request: pb.RegisterPaperDocumentRequest, context: Context
    ) -> pb.RegisterPaperDocumentResponse:
        unit = caller_unit()
        now = datetime.now(UTC)
        validate_paper(request, today_in_vietnam(now))
        registered_at = (
            request.registered_at.ToDatetime(UTC) if request.HasField("registered_at") else now
        )
        paper_id = str(uuid.uuid4())
        direction = (
            "incoming" if request.direction == pb.Direction.DIRECTION_INCOMING else "outgoing"
        )
        payload = PaperDocumentRegistered(
            paper_document_id=paper_id,
            unit_code=unit,
            direction=direction,
            counterpart=request.counterpart.strip(),
            code=request.code,
            document_type=request.document_type,
            subject=request.subject.strip(),
        )
        payload.registered_at.FromDatetime(registered_at)
        event = new_event(payload, producer=PRODUCER, occurred_at=registered_at)
        paper = PaperDocument(
            id=paper_id,
            unit_code=unit,
            idempotency_key=request.idempotency_key or paper_id,
            direction=direction,
            counterpart=payload.counterpart,
            number=request.code.number,
            notation=request.code.notation,
            document_type=request.document_type,
            subject=payload.subject,
            promulgation_date=request.promulgation_date,
            registered_at=registered_at,
        )
        stored_id = await self._store.register_paper(paper, event, _fingerprint(request))
        return pb.RegisterPaperDocumentResponse(paper_document_id=stored_id)

    # --- reading --------------------------------------------------------------------------

    async def _readable(self, document_id: str, unit: str) -> tuple[Document, Delivery | None]:
        """The document and, for a recipient, its delivery; PERMISSION_DENIED otherwise."""
        document = await self._store.get(document_id)
        if document is None:
            raise NotFound(f"document_id: no document {document_id!r}")
        if document.sender_code == unit:
            return document, None
        delivery = await self._store.delivery_for(document_id, unit)
        if delivery is None:
            raise PermissionDenied(f"{unit} neither sent nor received {document_id}")
        latest = await self._store.current(delivery.id, delivery.version)
        if latest is not None and latest.state.withdrawn:
            raise FailedPrecondition(
                f"{document_id} was withdrawn from {unit}'s inbox after its recall was accepted",
                reason="WITHDRAWN",
            )
        return document, delivery

    async def GetDocument(
        self, request: pb.GetDocumentRequest, context: Context
    ) -> pb.GetDocumentResponse:
        unit = caller_unit()
        validate_id("document_id", request.document_id)
        document, delivery = await self._readable(request.document_id, unit)
        signer = document.signer
        response = pb.GetDocumentResponse(
            document=document.summary,
            content_summary=document.content_summary,
            attachments=document.attachments,
            to_places=document.to_places,
            promulgation_place=document.promulgation_place,
            signer=pb.SignerInfo(
                competence=signer.competence, position=signer.position, full_name=signer.full_name
            ),
            steering_type=document.steering_type,
            response_for=document.response_for,
            frozen=document.frozen,
        )
        verification = await self._store.verification(request.document_id)
        if verification is not None:
            response.verification.CopyFrom(_verification(verification))
        if delivery is not None:
            response.forwarded_from.extend(delivery.forwarded_from)
            await self._store.mark_read(delivery.id)
            return response
        response.recipients.CopyFrom(document.recipients)
        for row in await self._store.deliveries_of(request.document_id):
            response.recipient_states.add(
                recipient_code=row.recipient_code,
                status_code=row.status_code,
                bounce_reason=row.bounce_reason,
                recall_status=row.recall_status,
                forwarded_from=row.forwarded_from,
            )
        return response

    async def GetAttachment(
        self, request: pb.GetAttachmentRequest, context: Context
    ) -> AsyncIterator[pb.GetAttachmentResponse]:
        caller = current_identity()
        validate_id("document_id", request.document_id)
        validate_id("attachment_id", request.attachment_id)
        validate_id("uploader_code", request.uploader_code)
        if request.uploader_code or not request.document_id:
            async for part in self._upload_for_precheck(request, caller.kind):
                yield part
            return
        # the access table admits units and the signature service; a unit reads its own only
        if caller.kind is Kind.SERVICE:
            found = await self._store.get(request.document_id)
            if found is None:
                raise NotFound(f"document_id: no document {request.document_id!r}")
            document = found
        else:
            document, _ = await self._readable(request.document_id, caller_unit())
        for ref in document.attachments:
            if ref.attachment_id == request.attachment_id:
                yield pb.GetAttachmentResponse(attachment=ref)
                async for chunk in self._attachments.download(request.attachment_id):
                    yield pb.GetAttachmentResponse(chunk=chunk)
                return
        raise NotFound(
            f"attachment_id: {request.document_id} has no attachment {request.attachment_id!r}"
        )

    async def _upload_for_precheck(
        self, request: pb.GetAttachmentRequest, kind: Kind
    ) -> AsyncIterator[pb.GetAttachmentResponse]:
        """An upload not necessarily submitted, for signature-service's pre-check on behalf
        of the unit that uploaded it (VerifyAttachments passes the caller's unit)."""
        problems = []
        if request.uploader_code and kind is not Kind.SERVICE:
            problems.append(
                FieldViolation(
                    "uploader_code", "only signature-service reads an upload by its unit"
                )
            )
        if request.uploader_code and request.document_id:
            problems.append(FieldViolation("uploader_code", "not with document_id"))
        if not request.uploader_code and not request.document_id:
            problems.append(FieldViolation("document_id", "is required"))
        if not request.attachment_id:
            problems.append(FieldViolation("attachment_id", "is required"))
        if problems:
            raise InvalidArgument(problems)
        owned = await self._attachments.owned(request.uploader_code, [request.attachment_id])
        ref = owned.get(request.attachment_id)
        if ref is None:
            raise NotFound(
                f"attachment_id: {request.uploader_code} uploaded no attachment"
                f" {request.attachment_id!r}"
            )
        yield pb.GetAttachmentResponse(attachment=ref)
        async for chunk in self._attachments.download(request.attachment_id):
            yield pb.GetAttachmentResponse(chunk=chunk)

    async def ListInbox(
        self, request: pb.ListInboxRequest, context: Context
    ) -> pb.ListInboxResponse:
        unit = caller_unit()
        validate_inbox_query(request)
        size = page_size(request.page_size, default=50, maximum=200)
        after = decode_time_key(request.page_token)
        if not min(Priority) <= request.min_priority <= max(Priority):
            raise InvalidArgument(
                [FieldViolation("min_priority", f"must be {min(Priority)} to {max(Priority)}")]
            )
        page = await self._store.inbox_page(
            unit,
            after=after,
            limit=size,
            status_codes=list(request.status_codes),
            min_priority=request.min_priority,
            since=_since(request.since) if request.HasField("since") else None,
            unread_only=request.unread_only,
        )
        following = page.next_after
        return pb.ListInboxResponse(
            entries=[_entry(delivery) for delivery in page.deliveries],
            next_page_token=encode_time_key(following.at, following.id) if following else "",
        )

    async def WatchInbox(
        self, request: pb.WatchInboxRequest, context: Context
    ) -> AsyncIterator[pb.WatchInboxResponse]:
        unit = caller_unit()
        with self._hub.watch(unit) as live:
            sent: set[str] = set()
            if request.HasField("since"):
                page = await self._store.inbox_page(unit, limit=1000, since=_since(request.since))
                for row in reversed(page.deliveries):  # oldest first, as they arrived
                    sent.add(row.id)
                    yield pb.WatchInboxResponse(entry=_entry(row))
            async for delivery in live:
                if delivery.id not in sent:
                    yield pb.WatchInboxResponse(entry=_entry(delivery))

    # --- status ---------------------------------------------------------------------------

    async def AcknowledgeDelivery(
        self, request: pb.AcknowledgeDeliveryRequest, context: Context
    ) -> pb.AcknowledgeDeliveryResponse:
        unit = caller_unit()
        validate_acknowledgement(request)
        delivery = await self._store.delivery(request.delivery_id)
        if delivery is None or delivery.bounced:
            raise NotFound(f"delivery_id: no delivery {request.delivery_id!r}")
        if delivery.recipient_code != unit:
            raise PermissionDenied(f"delivery {request.delivery_id} is not addressed to {unit}")
        after = await self._store.move(
            delivery,
            lambda state: acknowledge(state, request.status_code, request.description),
            reported=request.status_code,
            description=request.description.strip(),
            staff=request.staff.strip(),
            key=request.idempotency_key,
        )
        if after is None:
            raise NotFound(f"delivery_id: {request.delivery_id!r} has not arrived yet")
        return pb.AcknowledgeDeliveryResponse(
            delivery_id=request.delivery_id, status_code=after.status, recall_status=after.recall
        )

    async def TrackDocument(
        self, request: pb.TrackDocumentRequest, context: Context
    ) -> pb.TrackDocumentResponse:
        unit = caller_unit()
        validate_id("document_id", request.document_id)
        document = await self._store.get(request.document_id)
        if document is None:
            raise NotFound(f"document_id: no document {request.document_id!r}")
        if document.sender_code != unit:
            raise PermissionDenied(f"only the sender tracks {request.document_id}")
        response = pb.TrackDocumentResponse(document=document.summary, frozen=document.frozen)
        verification = await self._store.verification(request.document_id)
        if verification is not None:
            response.verification.CopyFrom(_verification(verification))
        for row in await self._store.deliveries_of(request.document_id):
            track = response.recipients.add(
                recipient_code=row.recipient_code,
                status_code=row.status_code,
                recall_status=row.recall_status,
                bounce_reason=row.bounce_reason,
                forwarded_from=row.forwarded_from,
            )
            for change in await self._store.history(row.id):
                entry = track.history.add(
                    status_code=change.reported_code,
                    description=change.description,
                    staff=change.staff,
                )
                entry.at.FromDatetime(change.at)
        return response

    async def RecallDocument(
        self, request: pb.RecallDocumentRequest, context: Context
    ) -> pb.RecallDocumentResponse:
        """Retry-safe: deliveries already asked are skipped."""
        unit = caller_unit()
        validate_recall(request)
        problems: list[FieldViolation] = []
        if request.business_type not in RECALL_KINDS:
            problems.append(FieldViolation("business_type", "must be RECALL, UPDATE or REPLACE"))
        if not request.reason.strip():
            problems.append(FieldViolation("reason", "is required"))
        replacing = request.business_type == pb.BusinessType.BUSINESS_TYPE_REPLACE
        if replacing and not request.replacement_document_id:
            problems.append(FieldViolation("replacement_document_id", "is required to replace"))
        if problems:
            raise InvalidArgument(problems)
        document = await self._store.get(request.document_id)
        if document is None:
            raise NotFound(f"document_id: no document {request.document_id!r}")
        if document.sender_code != unit:
            raise PermissionDenied(f"only the sender recalls {request.document_id}")
        if replacing:
            replacement = await self._store.get(request.replacement_document_id)
            if replacement is None or replacement.sender_code != unit:
                raise InvalidArgument(
                    [FieldViolation("replacement_document_id", f"{unit} sent no such document")]
                )
        await self._store.freeze(
            request.document_id,
            Recall(
                business_type=pb.BusinessType.Name(request.business_type),
                reason=request.reason.strip(),
                replacement_document_id=request.replacement_document_id,
                requested_at=datetime.now(UTC),
            ),
        )
        asked: list[str] = []
        for row in await self._store.deliveries_of(request.document_id):
            if row.bounced:
                continue
            moved = await self._store.move(
                row,
                request_recall,
                reported=StatusCode.RECALL_REQUESTED,
                description=request.reason.strip(),
                staff="",
            )
            if moved is not None:
                asked.append(row.recipient_code)
        return pb.RecallDocumentResponse(document_id=request.document_id, recipient_codes=asked)

    async def VerifyAudit(
        self, request: pb.VerifyAuditRequest, context: Context
    ) -> pb.VerifyAuditResponse:
        if request.unsigned_grace_seconds < 0:
            raise InvalidArgument(
                [FieldViolation("unsigned_grace_seconds", "must be 0 (the default) or more")]
            )
        report = await self._audit.verify(request.unsigned_grace_seconds)
        return pb.VerifyAuditResponse(
            intact=report.intact,
            entries_checked=report.checked,
            first_broken_entry=report.first_broken,
            problem=report.problem,
            checkpoints_verified=report.checkpoints,
        )

    async def ExportAudit(
        self, request: pb.ExportAuditRequest, context: Context
    ) -> AsyncIterator[pb.ExportAuditResponse]:
        async for record in self._audit.export(request.chain):
            yield record

    async def ListParkedEvents(
        self, request: pb.ListParkedEventsRequest, context: Context
    ) -> pb.ListParkedEventsResponse:
        if not 0 <= request.limit <= MAX_PARKED_PAGE:
            raise InvalidArgument([FieldViolation("limit", f"0 to {MAX_PARKED_PAGE}")])
        response = pb.ListParkedEventsResponse()
        for event in await self._store.parked_events(request.limit or 100):
            parked = response.events.add(
                event_id=event.event_id,
                topic=event.topic,
                key=event.key,
                size_bytes=event.size_bytes,
                reason=event.reason,
            )
            parked.parked_at.FromDatetime(event.parked_at)
        return response

    async def CountPendingDeliveries(
        self, request: pb.CountPendingDeliveriesRequest, context: Context
    ) -> pb.CountPendingDeliveriesResponse:
        codes = list(request.unit_codes)
        violations = [
            FieldViolation(f"unit_codes[{i}]", "is empty" if not code.strip() else
                           f"longer than {MAX_UNIT_CODE} characters")
            for i, code in enumerate(codes)
            if not code.strip() or len(code) > MAX_UNIT_CODE
        ]  # fmt: skip
        if not 0 < len(codes) <= MAX_PENDING_UNITS:
            violations.insert(
                0,
                FieldViolation(
                    "unit_codes", f"between 1 and {MAX_PENDING_UNITS} unit codes (got {len(codes)})"
                ),
            )
        if violations:
            raise InvalidArgument(violations)
        response = pb.CountPendingDeliveriesResponse()
        for code in codes:
            count, documents = await self._store.pending_to(code, sample=PENDING_SAMPLE)
            response.units.add(unit_code=code, pending=count, document_ids=documents)
        return response


def _fingerprint(request: Message) -> str:
    """What a retry must repeat: the request's bytes (deterministic serialisation)."""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def _verification(found: Verification) -> pb.Verification:
    # the view has the verdict's own fields under their names: copied by name, not listed
    view = json_format.ParseDict(
        json_format.MessageToDict(found.verified, preserving_proto_field_name=True),
        pb.Verification(),
        ignore_unknown_fields=True,
    )
    view.verified_at.FromDatetime(found.at)
    return view


def _since(moment: Timestamp) -> datetime:
    try:
        return moment.ToDatetime(UTC)
    except (ValueError, OverflowError, OSError) as exc:  # seconds or nanos out of range
        raise InvalidArgument([FieldViolation("since", f"not a valid time: {exc}")]) from exc
