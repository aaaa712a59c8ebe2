"""notification-service's event handlers: what the platform's events make it record.

specs = consumer_specs(NAME, deps.topics, EventHandler(notifier, reminders))
"""

from __future__ import annotations

from datetime import UTC

from aiokafka import ConsumerRecord

from lienthong.events.v1.events_pb2 import DeliveryCreated, DeliveryStatusChanged
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.kafka import ConsumerSpec, Topics
from notification_service.messages import notices_for
from notification_service.notifier import Notifier
from notification_service.reminders import Reminders

__all__ = ["EventHandler", "consumer_specs"]


class EventHandler:
    """Deliveries, status changes, bounces and verifications: their notices and reminders."""

    def __init__(self, notifier: Notifier, reminders: Reminders) -> None:
        self._notifier = notifier
        self._reminders = reminders

    async def on_event(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        """Record the notices of a delivery, status, bounce or verification event."""
        if carries(envelope, DeliveryCreated) and not unpack(envelope, DeliveryCreated).delivery_id:
            # reminders are keyed by the delivery: without its id they would collide
            raise PoisonEvent("delivery.created names no delivery_id")
        try:
            occurred = envelope.occurred_at.ToDatetime(UTC)
            notices = notices_for(envelope)
            if carries(envelope, DeliveryCreated):
                unpack(envelope, DeliveryCreated).document.due_at.ToDatetime(UTC)
        except (ValueError, OverflowError) as exc:  # a time outside the calendar: no retry helps
            raise PoisonEvent(f"{envelope.event_type}: a time is out of range: {exc}") from exc
        for notice in notices:
            if not notice.unit_code:
                raise PoisonEvent(f"{envelope.event_type} names no unit to tell ({notice.kind})")
        for notice in notices:
            await self._notifier.record(notice, occurred_at=occurred)
        if carries(envelope, DeliveryCreated):
            await self._reminders.schedule(unpack(envelope, DeliveryCreated), occurred)
        elif carries(envelope, DeliveryStatusChanged):
            await self._reminders.stop_if_settled(unpack(envelope, DeliveryStatusChanged))


def consumer_specs(name: str, topics: Topics, handler: EventHandler) -> list[ConsumerSpec]:
    return [
        # every record the handler writes is keyed by the event (or the reminder): a
        # redelivery adds nothing, so no separate applied-event markers
        ConsumerSpec(
            name,
            [*topics.all_deliveries, topics.verifications],
            handler.on_event,
            dedupe=False,
        )
    ]
