"""Recording what must be told: the in-app notice and one job per (notice, contact, channel).

The Kafka consumer (consumers.py) and the reminder scheduler only *record* work here; the
channel workers (dispatch.py) send it. Every record is inserted under a key derived from what
caused it, so a redelivered event or a re-fired reminder finds its records already there and
adds nothing::

    in-app notice  _id = derived_event_id(source_id, "in_app", unit_code)
    job            _id = derived_event_id(source_id, contact_id, channel)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time

from lienthong.events.v1.events_pb2 import NotificationRecorded
from lienthong_kit.envelope import derived_event_id, new_event
from lienthong_kit.kafka import EventProducer, Topics
from notification_service.messages import Notice
from notification_service.metrics import NOTIFICATION_DELIVERY, NOTIFICATIONS_SENT
from notification_service.store import Contact, Notification, NotificationStore
from notification_service.timing import Clock, hold_until

__all__ = ["PERSONAL_CHANNELS", "Notifier"]

# Channels that reach a person's pocket: routine notices wait for the quiet hours to end.
PERSONAL_CHANNELS = ("email", "sms")


class Notifier:
    def __init__(
        self,
        store: NotificationStore,
        *,
        producer: EventProducer,
        topics: Topics,
        clock: Clock,
        quiet_hours: tuple[time, time] | None,
        producer_name: str,
    ) -> None:
        self._store = store
        self._producer = producer
        self._topics = topics
        self._clock = clock
        self._quiet = quiet_hours
        self._name = producer_name
        self._wake: Callable[[str, list[str]], None] = lambda channel, job_ids: None

    def on_jobs(self, wake: Callable[[str, list[str]], None]) -> None:
        """``wake(channel, job_ids)`` is called after jobs for that channel were recorded."""
        self._wake = wake

    async def record(self, notice: Notice, *, occurred_at: datetime | None = None) -> None:
        """The in-app notice for the unit and a job per subscribed contact and channel."""
        now = self._clock.now()
        notification_id = derived_event_id(notice.source_id, "in_app", notice.unit_code)
        stored = await self._store.add_notification(
            Notification(
                id=notification_id,
                unit_code=notice.unit_code,
                channel="in_app",
                kind=notice.kind,
                urgent=notice.urgent,
                title=notice.title,
                body=notice.body,
                document_id=notice.document_id,
                created_at=now,
            )
        )
        if stored:
            NOTIFICATIONS_SENT.labels("in_app").inc()
            if occurred_at is not None:
                NOTIFICATION_DELIVERY.labels("in_app").observe(
                    max((datetime.now(UTC) - occurred_at).total_seconds(), 0.0)
                )
        # a redelivery is announced again, in case the first run stopped before announcing
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

    async def _targets(self, notice: Notice) -> list[tuple[Contact, str]]:
        """(contact, channel) pairs subscribed to the notice's kind, each pair once."""
        subscriptions = [
            subscription
            for subscription in await self._store.subscriptions(notice.unit_code)
            if notice.kind in subscription.event_kinds
        ]
        if not subscriptions:
            return []
        contacts = await self._store.contacts(notice.unit_code)
        pairs: dict[tuple[str, str], Contact] = {}
        for subscription in subscriptions:
            for contact in contacts:
                if subscription.reaches(contact):
                    for channel in subscription.channels:
                        pairs[(contact.id, channel)] = contact
        return [(contact, channel) for (_, channel), contact in sorted(pairs.items())]

    async def _enqueue(self, notice: Notice, contact: Contact, channel: str, now: datetime) -> str:
        """Record the job (a redelivery finds it recorded); its id."""
        not_before = now
        if channel in PERSONAL_CHANNELS and not notice.urgent:
            not_before = hold_until(now, self._quiet)
        job_id = derived_event_id(notice.source_id, contact.id, channel)
        await self._store.add_job(
            {
                "_id": job_id,
                "channel": channel,
                "state": "pending",
                "unit_code": notice.unit_code,
                "contact_id": contact.id,
                "address": contact.address(channel),
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
