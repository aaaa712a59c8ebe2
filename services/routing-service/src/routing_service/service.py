"""Routing: the RoutingService API and the fan-out of verified documents."""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka import ConsumerRecord
from grpc import aio

from lienthong.common.v1.common_pb2 import Verdict
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated, DocumentVerified
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceServicer
from lienthong_kit.envelope import EventEnvelope, derived_event_id, new_event, unpack
from lienthong_kit.errors import NotFound
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.paging import decode_token, encode_token, page_size
from routing_service.registry import Registry

__all__ = ["FanOut", "RoutingServicer", "delivery_id"]

PRODUCER = "routing-service"
_DELIVERY_NAMESPACE = uuid.UUID("0b0f5d1e-7a43-4e0e-a0c4-5b7f1f6d2c11")


def delivery_id(document_id: str, recipient_code: str) -> str:
    """The same document and recipient always give the same delivery id."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{document_id}/{recipient_code}"))


class FanOut:
    """One delivery event per recipient, keyed by the recipient's code; bounces otherwise."""

    def __init__(self, registry: Registry, producer: EventProducer, topics: Topics) -> None:
        self._registry = registry
        self._producer = producer
        self._topics = topics

    async def on_verified(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        verified = unpack(envelope, DocumentVerified)
        document = verified.document
        recipients = list(dict.fromkeys(verified.recipients.unit_codes))
        for code in recipients:
            if code == document.sender_code:
                continue
            reason = ""
            if verified.verdict != Verdict.VERDICT_ACCEPTED:
                reason = f"signature verification refused the document: {verified.reason}"
            else:
                unit = await self._registry.get(code)
                if unit is None:
                    reason = f"unknown recipient {code}: no such unit in the registry"
                elif not unit.active:
                    reason = f"recipient {code} is not active"
            payload: DeliveryCreated | DeliveryBounced
            if reason:
                payload = DeliveryBounced(
                    delivery_id=delivery_id(document.document_id, code),
                    document=document,
                    recipient_code=code,
                    reason=reason,
                )
            else:
                payload = DeliveryCreated(
                    delivery_id=delivery_id(document.document_id, code),
                    document=document,
                    recipient_code=code,
                )
            await self._producer.publish(
                self._topics.deliveries,
                key=code,
                envelope=new_event(
                    payload,
                    producer=PRODUCER,
                    event_id=derived_event_id(envelope.event_id, code),
                    trace_id=envelope.trace_id,
                ),
            )


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
        unit = await self._registry.get(request.code)
        if unit is None:
            raise NotFound(f"code: no unit {request.code!r} in the registry")
        return pb.GetUnitResponse(unit=unit)

    async def ListUnits(
        self, request: pb.ListUnitsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListUnitsResponse:
        size = page_size(request.page_size, default=100, maximum=500)
        token = decode_token(request.page_token)
        units = await self._registry.page(
            parent_code=request.parent_code,
            level=request.level,
            after=token[0] if token else "",
            limit=size + 1,
        )
        response = pb.ListUnitsResponse(units=units[:size])
        if len(units) > size:
            response.next_page_token = encode_token(units[size - 1].code)
        return response
