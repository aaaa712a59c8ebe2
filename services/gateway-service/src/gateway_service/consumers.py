"""gateway-service's event handlers: the deliveries the axis bridge carries (bridge.py)."""

from __future__ import annotations

from datetime import UTC

from aiokafka import ConsumerRecord

from gateway_service.bridge import AxisBridge
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated, DeliveryStatusChanged
from lienthong_kit.envelope import EventEnvelope, carries, unpack

__all__ = ["AxisDeliveries"]


class AxisDeliveries:
    """Deliveries to external agencies go out through the axis; answers of the province's
    units to documents from external agencies go back as status packages."""

    def __init__(self, bridge: AxisBridge) -> None:
        self._bridge = bridge

    async def on_delivery(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        bridge = self._bridge
        if carries(envelope, DeliveryCreated):
            created = unpack(envelope, DeliveryCreated)
            if created.via_axis:
                await bridge.send_out(created)
        elif carries(envelope, DeliveryStatusChanged):
            changed = unpack(envelope, DeliveryStatusChanged)
            document = changed.document
            if await bridge.is_external(document.sender_code):
                await bridge.send_status(
                    document,
                    changed.recipient_code,
                    changed.reported_code or changed.status_code,
                    description=changed.description,
                    staff=changed.staff,
                    at=changed.changed_at.ToDatetime(tzinfo=UTC)
                    if changed.HasField("changed_at")
                    else None,
                )
        elif carries(envelope, DeliveryBounced):
            bounced = unpack(envelope, DeliveryBounced)
            document = bounced.document
            if await bridge.is_external(document.sender_code):
                await bridge.send_status(
                    document, bounced.recipient_code, "02", description=bounced.reason[:1000]
                )
