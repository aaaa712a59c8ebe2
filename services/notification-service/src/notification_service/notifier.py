"""Recording what must be told: the in-app notice and one job per (notice, contact, channel).

The Kafka consumer (and the reminder scheduler) only *record* work here; the channel workers
(dispatch.py) send it. Every record is inserted under a key derived from what caused it, so a
redelivered event or a re-fired reminder finds its records already there and adds nothing::

    in-app notice  _id = derived_event_id(source_id, "in_app", unit_code)
    job            _id = derived_event_id(source_id, contact_id, channel)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, time

from aiokafka import ConsumerRecord
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from lienthong.events.v1.events_pb2 import (
    DeliveryCreated,
    DeliveryStatusChanged,
    NotificationRecorded,
)
from lienthong_kit.envelope import EventEnvelope, carries, derived_event_id, new_event, unpack
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.mongo import AsyncDatabase, Doc, ensure_indexes
from notification_service.messages import Notice, notices_for
from notification_service.metrics import NOTIFICATION_DELIVERY, NOTIFICATIONS_SENT
from notification_service.reminders import Reminders
from notification_service.timing import Clock, hold_until

__all__ = ["PERSONAL_CHANNELS", "Notifier"]

# Channels that reach a person's pocket: routine notices wait for the quiet hours to end.
PERSONAL_CHANNELS = ("email", "sms")


class Notifier:
    def __init__(
        self,
        db: AsyncDatabase[Doc],
        *,
        producer: EventProducer,
        topics: Topics,
        clock: Clock,
        quiet_hours: tuple[time, time] | None,
        reminders: Reminders,
        producer_name: str,
    ) -> None:
        self.notifications = db["notifications"]
        self.contacts = db["contacts"]
        self.groups = db["groups"]
        self.subscriptions = db["subscriptions"]
        self.jobs = db["jobs"]
        self._producer = producer
        self._topics = topics
        self._clock = clock
        self._quiet = quiet_hours
        self._reminders = reminders
        self._name = producer_name
        self._wake: Callable[[str, list[str]], None] = lambda channel, job_ids: None

    def on_jobs(self, wake: Callable[[str, list[str]], None]) -> None:
        """``wake(channel, job_ids)`` is called after jobs for that channel were recorded."""
        self._wake = wake

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self.notifications,
            [
                IndexModel([("unit_code", ASCENDING), ("created_at", DESCENDING)]),
                IndexModel([("unit_code", ASCENDING), ("read", ASCENDING)]),
            ],
        )
        await ensure_indexes(self.contacts, [IndexModel([("unit_code", ASCENDING)])])
        await ensure_indexes(self.groups, [IndexModel([("unit_code", ASCENDING)])])
        await ensure_indexes(self.subscriptions, [IndexModel([("unit_code", ASCENDING)])])
        await ensure_indexes(
            self.jobs,
            [
                IndexModel([("channel", ASCENDING), ("state", ASCENDING)]),
                IndexModel([("unit_code", ASCENDING), ("state", ASCENDING)]),
            ],
        )

    # --- the consumer ---------------------------------------------------------------------

    async def on_event(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        """Record the notices of a delivery, status, bounce or verification event."""
        occurred = envelope.occurred_at.ToDatetime(UTC)
        if carries(envelope, DeliveryCreated) and not unpack(envelope, DeliveryCreated).delivery_id:
            # reminders are keyed by the delivery: without its id they would collide
            raise PoisonEvent("delivery.created names no delivery_id")
        notices = notices_for(envelope)
        for notice in notices:
            if not notice.unit_code:
                raise PoisonEvent(f"{envelope.event_type} names no unit to tell ({notice.kind})")
        for notice in notices:
            await self.record(notice, occurred_at=occurred)
        if carries(envelope, DeliveryCreated):
            await self._reminders.schedule(unpack(envelope, DeliveryCreated), occurred)
        elif carries(envelope, DeliveryStatusChanged):
            await self._reminders.stop_if_settled(unpack(envelope, DeliveryStatusChanged))

    async def record(self, notice: Notice, *, occurred_at: datetime | None = None) -> None:
        """The in-app notice for the unit and a job per subscribed contact and channel."""
        now = self._clock.now()
        notification_id = derived_event_id(notice.source_id, "in_app", notice.unit_code)
        try:
            await self.notifications.insert_one(
                {
                    "_id": notification_id,
                    "unit_code": notice.unit_code,
                    "channel": "in_app",
                    "kind": notice.kind,
                    "urgent": notice.urgent,
                    "title": notice.title,
                    "body": notice.body,
                    "document_id": notice.document_id,
                    "created_at": now,
                    "read": False,
                }
            )
            NOTIFICATIONS_SENT.labels("in_app").inc()
            if occurred_at is not None:
                NOTIFICATION_DELIVERY.labels("in_app").observe(
                    max((datetime.now(UTC) - occurred_at).total_seconds(), 0.0)
                )
        except DuplicateKeyError:
            pass  # a redelivery: announce it again below, in case the first run stopped here
        await self._announce(notification_id, notice)
        recorded: dict[str, list[str]] = {}
        for contact, channel in await self._targets(notice):
            job_id = await self._enqueue(notice, contact, channel, now)
            recorded.setdefault(channel, []).append(job_id)
        for channel, job_ids in recorded.items():
            self._wake(channel, job_ids)

    async def _announce(self, notification_id: str, notice: Notice) -> None:
        """notification.recorded, which every replica's watch streams follow."""
        recorded = NotificationRecorded(
            notification_id=notification_id,
            unit_code=notice.unit_code,
            channel="in_app",
            document_id=notice.document_id,
        )
        envelope = new_event(
            recorded,
            producer=self._name,
            event_id=derived_event_id(notification_id, "recorded"),
        )
        await self._producer.publish(
            self._topics.notifications, key=notice.unit_code, envelope=envelope
        )

    async def _targets(self, notice: Notice) -> list[tuple[Doc, str]]:
        """(contact, channel) pairs subscribed to the notice's kind, each pair once."""
        subscriptions = [
            row
            async for row in self.subscriptions.find({"unit_code": notice.unit_code})
            if notice.kind in row["event_kinds"]
        ]
        if not subscriptions:
            return []
        contacts = [row async for row in self.contacts.find({"unit_code": notice.unit_code})]
        pairs: dict[tuple[str, str], Doc] = {}
        for subscription in subscriptions:
            for contact in contacts:
                if subscription.get("contact_id"):
                    chosen = contact["_id"] == subscription["contact_id"]
                else:
                    chosen = subscription["group_code"] in contact.get("group_codes", [])
                if chosen:
                    for channel in subscription["channels"]:
                        pairs[(contact["_id"], channel)] = contact
        return [(contact, channel) for (_, channel), contact in sorted(pairs.items())]

    async def _enqueue(self, notice: Notice, contact: Doc, channel: str, now: datetime) -> str:
        """Record the job (a redelivery finds it recorded); its id."""
        address = {
            "email": contact.get("email", ""),
            "sms": contact.get("phone", ""),
            "webhook": contact.get("webhook_url", ""),
        }[channel]
        not_before = now
        if channel in PERSONAL_CHANNELS and not notice.urgent:
            not_before = hold_until(now, self._quiet)
        job_id = derived_event_id(notice.source_id, contact["_id"], channel)
        with contextlib.suppress(DuplicateKeyError):
            await self.jobs.insert_one(
                {
                    "_id": job_id,
                    "channel": channel,
                    "state": "pending",
                    "unit_code": notice.unit_code,
                    "contact_id": contact["_id"],
                    "address": address,
                    "kind": notice.kind,
                    "urgent": notice.urgent,
                    "title": notice.title,
                    "body": notice.body,
                    "facts": notice.facts,
                    "document_id": notice.document_id,
                    "created_at": now,
                    "recorded_at": datetime.now(UTC),
                    "not_before": not_before,
                    "attempts": 0,
                    "last_error": "",
                }
            )
        return job_id

    # --- in-app reads ---------------------------------------------------------------------

    async def notification(self, notification_id: str) -> Doc | None:
        return await self.notifications.find_one({"_id": notification_id})

    async def mark_read(self, unit: str, ids: list[str]) -> int:
        marked = 0
        for notification_id in dict.fromkeys(ids):
            result = await self.notifications.update_one(
                {"_id": notification_id, "unit_code": unit, "read": False},
                {"$set": {"read": True, "read_at": datetime.now(UTC)}},
            )
            marked += result.modified_count
        return marked
