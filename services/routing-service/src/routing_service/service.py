"""Routing: the RoutingService API and the fan-out of verified documents."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord
from grpc import aio

from lienthong.common.v1.common_pb2 import DocumentSummary, Verdict
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated, DocumentVerified
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceServicer
from lienthong_kit.envelope import (
    EventEnvelope,
    derived_event_id,
    event_type_of,
    new_event,
    unpack,
)
from lienthong_kit.errors import FieldViolation, InvalidArgument, NotFound, Violations
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.paging import decode_token, encode_token, page_size
from routing_service.registry import (
    MAX_IMPORT_ROWS,
    VIETNAM,
    Registry,
    date_problem,
    today,
)
from routing_service.resolve import resolve

__all__ = ["FanOut", "RoutingServicer", "delivery_id"]

PRODUCER = "routing-service"
_DELIVERY_NAMESPACE = uuid.UUID("0b0f5d1e-7a43-4e0e-a0c4-5b7f1f6d2c11")
_DELIVERY_NAMESPACE_BYTES = _DELIVERY_NAMESPACE.bytes


def delivery_id(document_id: str, recipient_code: str) -> str:
    """The same document and recipient always give the same delivery id (a UUID version 5,
    computed as ``uuid.uuid5`` does, without building UUID objects: a fan-out makes hundreds)."""
    digest = bytearray(
        hashlib.sha1(  # noqa: S324 - UUID version 5 is defined with SHA-1
            _DELIVERY_NAMESPACE_BYTES + f"{document_id}/{recipient_code}".encode()
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _document_date(document: DocumentSummary) -> str:
    """The day a document is routed for: its submission day in Vietnam (today if unknown)."""
    if document.HasField("submitted_at"):
        submitted: datetime = document.submitted_at.ToDatetime(tzinfo=VIETNAM)
        return submitted.date().isoformat()
    return today()


class FanOut:
    """One delivery event per recipient, keyed by the recipient's code; bounces otherwise.

    Urgent documents (priority >= 1: khẩn, thượng khẩn, hỏa tốc) go on the urgent deliveries
    topic so they never queue behind routine ones. All the records of one document are sent
    as one batch (ordered per partition, so per recipient).
    """

    def __init__(self, registry: Registry, publisher: EventProducer, topics: Topics) -> None:
        self._registry = registry
        self._publisher = publisher
        self._topics = topics

    async def on_verified(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        verified = unpack(envelope, DocumentVerified)
        document = verified.document
        resolution = resolve(
            self._registry.index,
            sender_code=document.sender_code,
            recipients=verified.recipients,
            as_of=_document_date(document),
        )
        bounces = list(resolution.bounces)
        deliver = resolution.unit_codes
        if verified.verdict != Verdict.VERDICT_ACCEPTED:
            reason = f"signature verification refused the document: {verified.reason}"
            bounces = [(code, reason) for code in deliver] + bounces
            deliver = []
        urgent = document.priority >= 1
        topic = self._topics.deliveries_urgent if urgent else self._topics.deliveries
        # One template per payload type, mutated per recipient: a document may go to hundreds
        # of units, and building each envelope from scratch costs more than sending it.
        template = new_event(
            DeliveryCreated(document=document), producer=PRODUCER, trace_id=envelope.trace_id
        )
        created = DeliveryCreated(document=document)
        bounced = DeliveryBounced(document=document)
        records: list[tuple[bytes, bytes]] = []

        def add(code: str, payload: DeliveryCreated | DeliveryBounced) -> None:
            payload.delivery_id = delivery_id(document.document_id, code)
            payload.recipient_code = code
            template.event_id = derived_event_id(envelope.event_id, code)
            template.event_type = event_type_of(payload)
            template.payload.Pack(payload)
            records.append((code.encode(), template.SerializeToString()))

        for code in deliver:
            add(code, created)
        for code, reason in bounces:
            bounced.reason = reason
            add(code, bounced)
        if records:
            await self._publisher.publish_batch(topic, records)


class RoutingServicer(RoutingServiceServicer):
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def UpsertUnit(
        self, request: pb.UpsertUnitRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.UpsertUnitResponse:
        return pb.UpsertUnitResponse(unit=await self._registry.upsert(request.unit))

    async def GetUnit(
        self, request: pb.GetUnitRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetUnitResponse:
        unit = self._registry.index.get(request.code)
        if unit is None:
            raise NotFound(f"code: no unit {request.code!r} in the registry")
        return pb.GetUnitResponse(unit=unit)

    async def ListUnits(
        self, request: pb.ListUnitsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListUnitsResponse:
        size = page_size(request.page_size, default=100, maximum=500)
        token = decode_token(request.page_token)
        after = token[0] if token else ""
        index = self._registry.index
        if request.parent_code:
            parent = index.get(request.parent_code)
            codes = index.children(parent.code) if parent is not None else []
        else:
            codes = index.codes()
        page: list[pb.Unit] = []
        more = False
        for unit in index.units(code for code in codes if code > after):
            if request.level and unit.level != request.level:
                continue
            if request.active == pb.ACTIVE_FILTER_ACTIVE and not unit.active:
                continue
            if request.active == pb.ACTIVE_FILTER_INACTIVE and unit.active:
                continue
            if len(page) == size:
                more = True
                break
            page.append(unit)
        response = pb.ListUnitsResponse(units=page)
        if more:
            response.next_page_token = encode_token(page[-1].code)
        return response

    async def ImportRegistry(
        self,
        request_iterator: AsyncIterator[pb.ImportRegistryRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> pb.ImportRegistryResponse:
        rows: list[pb.Unit] = []
        async for request in request_iterator:
            if len(rows) == MAX_IMPORT_ROWS:
                raise InvalidArgument(
                    [FieldViolation("rows", f"at most {MAX_IMPORT_ROWS} rows per import")]
                )
            rows.append(request.unit)
        if not rows:
            raise InvalidArgument([FieldViolation("rows", "no rows to import")])
        applied, created = await self._registry.import_rows(rows)
        return pb.ImportRegistryResponse(applied=applied, created=created)

    async def CloseUnit(
        self, request: pb.CloseUnitRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.CloseUnitResponse:
        unit = await self._registry.close(
            request.code, successor_code=request.successor_code, closed_on=request.closed_on
        )
        return pb.CloseUnitResponse(unit=unit)

    async def ResolveRecipients(
        self, request: pb.ResolveRecipientsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ResolveRecipientsResponse:
        v = Violations()
        if request.as_of:
            problem = date_problem(request.as_of)
            if problem:
                v.add("as_of", problem)
        v.require(
            bool(request.recipients.unit_codes or request.recipients.scopes),
            "recipients",
            "name at least one unit code or scope",
        )
        v.raise_if_any()
        resolution = resolve(
            self._registry.index,
            sender_code=request.sender_code,
            recipients=request.recipients,
            as_of=request.as_of or today(),
        )
        return pb.ResolveRecipientsResponse(
            unit_codes=resolution.unit_codes,
            bounces=[pb.Bounce(recipient_code=c, reason=r) for c, r in resolution.bounces],
        )
