"""routing-service's event handlers: the fan-out of verified documents to their recipients."""

from __future__ import annotations

import hashlib
import uuid

from aiokafka import ConsumerRecord

from lienthong.common.v1.common_pb2 import DocumentSummary, Forwarded, Verdict
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated, DocumentVerified
from lienthong_kit.envelope import (
    EventEnvelope,
    derived_event_id,
    event_type_of,
    new_event,
    unpack,
)
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.logs import get_logger
from lienthong_kit.vocabulary import VIETNAM, Priority
from routing_service.registry import Registry, today
from routing_service.resolve import resolve

__all__ = ["FanOut", "delivery_id"]

log = get_logger(__name__)

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
        try:
            return document.submitted_at.ToDatetime(tzinfo=VIETNAM).date().isoformat()
        except (ValueError, OverflowError) as exc:  # outside the calendar: no retry helps
            raise PoisonEvent(f"document.submitted_at is out of range: {exc}") from exc
    return today()


class FanOut:
    """One delivery event per recipient, keyed by the recipient's code; bounces otherwise.

    Urgent documents (khẩn and above) go on the urgent deliveries topic so they never queue
    behind routine ones. All the records of one document are sent as one batch (ordered per
    partition, so per recipient).
    """

    def __init__(
        self,
        registry: Registry,
        publisher: EventProducer,
        topics: Topics,
        *,
        forward_closed: bool = False,
    ) -> None:
        self._registry = registry
        self._publisher = publisher
        self._topics = topics
        self._forward_closed = forward_closed

    async def on_verified(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        verified = unpack(envelope, DocumentVerified)
        document = verified.document
        resolution = resolve(
            self._registry.index,
            sender_code=document.sender_code,
            recipients=verified.recipients,
            as_of=_document_date(document),
            forward_closed=self._forward_closed,
        )
        bounces = list(resolution.bounces)
        deliver = resolution.unit_codes
        if verified.verdict != Verdict.VERDICT_ACCEPTED:
            reason = f"signature verification refused the document: {verified.reason}"
            bounces = [(code, reason) for code in deliver] + bounces
            deliver = []
        urgent = document.priority >= Priority.URGENT
        topic = self._topics.deliveries_urgent if urgent else self._topics.deliveries
        # One template per payload type, mutated per recipient: a document may go to hundreds
        # of units, and building each envelope from scratch costs more than sending it.
        template = new_event(
            DeliveryCreated(document=document), producer=PRODUCER, trace_id=envelope.trace_id
        )
        created = DeliveryCreated(document=document)
        bounced = DeliveryBounced(document=document)
        records: list[tuple[bytes, bytes]] = []
        # the sender learns where a document to a closed unit went (its TrackDocument)
        forwarded: dict[str, list[Forwarded]] = {}
        for closed, successor, why in resolution.forwards:
            log.info("forwarded", document_id=document.document_id, closed=closed, to=successor)
            forwarded.setdefault(successor, []).append(
                Forwarded(closed_code=closed, reason=why, at=template.occurred_at)
            )

        def add(code: str, payload: DeliveryCreated | DeliveryBounced) -> None:
            payload.delivery_id = delivery_id(document.document_id, code)
            payload.recipient_code = code
            template.event_id = derived_event_id(envelope.event_id, code)
            template.event_type = event_type_of(payload)
            template.payload.Pack(payload)
            records.append((code.encode(), template.SerializeToString()))

        for code in deliver:
            created.via_axis = code in resolution.via_axis
            del created.forwarded_from[:]
            created.forwarded_from.extend(forwarded.get(code, ()))
            add(code, created)
        for code, reason in bounces:
            bounced.reason = reason
            add(code, bounced)
        if records:
            await self._publisher.publish_batch(topic, records)
