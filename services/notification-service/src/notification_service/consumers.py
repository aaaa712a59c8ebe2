"""notification-service's event handlers: what the platform's events make it record.

specs = consumer_specs(NAME, deps.topics, EventHandler(notifier, reminders))
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from lienthong.events.v1.events_pb2 import DeliveryCreated, DeliveryStatusChanged
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.kafka import ConsumerSpec, Staging, Topics
from lienthong_kit.mongo import Doc
from notification_service.messages import Notice, notices_for
from notification_service.notifier import Notifier
from notification_service.reminders import Reminders

__all__ = ["EventHandler", "consumer_specs"]


# events per poll, so per write: a broadcast's deliveries recorded in a few writes, not one
# store round trip and one acknowledged produce per notice (docs/benchmarks.md, "April")
POLL_RECORDS = 500


class EventHandler:
    """Deliveries, status changes, bounces and verifications: their notices and reminders.

    ``on_event`` only stages what an event causes (a PoisonEvent there dead-letters the
    record); ``flush``, the consumer's ``before_commit``, records a poll's notices and
    reminders together. Every write is keyed by its cause, so a redelivery adds nothing.
    """

    def __init__(self, notifier: Notifier, reminders: Reminders) -> None:
        self._notifier = notifier
        self._reminders = reminders
        self._notices = Staging[tuple[Notice, datetime]]()
        self._planned = Staging[Doc]()
        self._settled = Staging[DeliveryStatusChanged]()

    async def on_event(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        """Stage the notices and reminders of a delivery, status, bounce or verification event."""
        created = unpack(envelope, DeliveryCreated) if carries(envelope, DeliveryCreated) else None
        if created is not None and not created.delivery_id:
            # reminders are keyed by the delivery: without its id they would collide
            raise PoisonEvent("delivery.created names no delivery_id")
        try:
            occurred = envelope.occurred_at.ToDatetime(UTC)
            notices = notices_for(envelope)
            planned = self._reminders.plan(created, occurred) if created is not None else []
        except (ValueError, OverflowError) as exc:  # a time outside the calendar: no retry helps
            raise PoisonEvent(f"{envelope.event_type}: a time is out of range: {exc}") from exc
        for notice in notices:
            if not notice.unit_code:
                raise PoisonEvent(f"{envelope.event_type} names no unit to tell ({notice.kind})")
            # refused here, where the record is dead-lettered: in flush (retried until it
            # succeeds) a notice the store cannot hold would stop the consumer
            if any("\x00" in text for text in _texts(notice)):
                raise PoisonEvent(f"{envelope.event_type}: a NUL character in a notice")
        self._notices.extend((notice, occurred) for notice in notices)
        self._planned.extend(planned)
        if carries(envelope, DeliveryStatusChanged):
            self._settled.add(unpack(envelope, DeliveryStatusChanged))

    async def flush(self) -> None:
        """Record what was staged since the last commit (retried by the consumer loop until it
        succeeds; the commit follows it)."""
        with (
            self._notices.taken() as notices,
            self._planned.taken() as planned,
            self._settled.taken() as settled,
        ):
            await self._notifier.record_many(notices)
            await self._reminders.schedule_many(planned)
            for changed in settled:
                await self._reminders.stop_if_settled(changed)


def _texts(notice: Notice) -> list[str]:
    """A notice's texts that are stored (the store keeps no NUL character in text)."""
    return [
        notice.kind,
        notice.unit_code,
        notice.source_id,
        notice.document_id,
        notice.delivery_id,
        notice.title,
        notice.body,
        *notice.facts.keys(),
        *notice.facts.values(),
    ]


def consumer_specs(name: str, topics: Topics, handler: EventHandler) -> list[ConsumerSpec]:
    return [
        # every record the handler writes is keyed by the event (or the reminder): a
        # redelivery adds nothing, so no separate applied-event markers
        ConsumerSpec(
            name,
            [*topics.all_deliveries, topics.verifications],
            handler.on_event,
            dedupe=False,
            before_commit=handler.flush,
            max_records=POLL_RECORDS,
        )
    ]
