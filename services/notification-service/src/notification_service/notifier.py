"""Recording what must be told: the in-app notice and one job per (notice, contact, channel).

The Kafka consumer (consumers.py) and the reminder scheduler only *record* work here; the
channel workers (dispatch.py) send it. Every record is inserted under a key derived from what
caused it, so a redelivered event or a re-fired reminder finds its records already there and
adds nothing::

    in-app notice  _id = derived_event_id(source_id, "in_app", unit_code)
    job            _id = derived_event_id(source_id, contact_id, channel)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time

from lienthong.events.v1.events_pb2 import NotificationRecorded
from lienthong_kit.envelope import derived_event_id, new_event
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.mongo import Doc
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
        await self.record_many([(notice, occurred_at)])

    async def record_many(self, notices: Sequence[tuple[Notice, datetime | None]]) -> None:
        """:meth:`record` for many notices, with one write per collection and one produce (the
        consumer records a poll's notices together: docs/benchmarks.md, "April")."""
        if not notices:
            return
        now = self._clock.now()
        rows = [
            Notification(
                id=derived_event_id(notice.source_id, "in_app", notice.unit_code),
                unit_code=notice.unit_code,
                channel="in_app",
                kind=notice.kind,
                urgent=notice.urgent,
                title=notice.title,
                body=notice.body,
                document_id=notice.document_id,
                created_at=now,
            )
            for notice, _ in notices
        ]
        stored = await self._store.add_notifications(rows)
        for (_, occurred_at), new in zip(notices, stored, strict=True):
            if new:
                NOTIFICATIONS_SENT.labels("in_app").inc()
                if occurred_at is not None:
                    NOTIFICATION_DELIVERY.labels("in_app").observe(
                        max((datetime.now(UTC) - occurred_at).total_seconds(), 0.0)
                    )
        # a redelivery is announced again, in case the first run stopped before announcing
        await self._announce(
            [(row.id, notice) for row, (notice, _) in zip(rows, notices, strict=True)]
        )
        targets = await self._targets([notice for notice, _ in notices])
        jobs: list[Doc] = []
        recorded: dict[str, list[str]] = {}
        for (notice, _), pairs in zip(notices, targets, strict=True):
            for contact, channel in pairs:
                job = self._job(notice, contact, channel, now)
                jobs.append(job)
                recorded.setdefault(channel, []).append(job["_id"])
        await self._store.add_jobs(jobs)
        for channel, job_ids in recorded.items():
            self._wake(channel, job_ids)

    async def _announce(self, recorded: list[tuple[str, Notice]]) -> None:
        """notification.recorded, which every replica's watch streams follow."""
        records = [
            (
                notice.unit_code.encode(),
                new_event(
                    NotificationRecorded(
                        notification_id=notification_id,
                        unit_code=notice.unit_code,
                        channel="in_app",
                        document_id=notice.document_id,
                    ),
                    producer=self._name,
                    event_id=derived_event_id(notification_id, "recorded"),
                ).SerializeToString(),
            )
            for notification_id, notice in recorded
        ]
        await self._producer.publish_batch(self._topics.notifications, records)

    async def _targets(self, notices: list[Notice]) -> list[list[tuple[Contact, str]]]:
        """Per notice, the (contact, channel) pairs subscribed to its kind, each pair once."""
        units = sorted({notice.unit_code for notice in notices})
        subscriptions = await self._store.subscriptions_of(units)
        wanted = sorted(
            {
                notice.unit_code
                for notice in notices
                if any(notice.kind in s.event_kinds for s in subscriptions[notice.unit_code])
            }
        )
        contacts = await self._store.contacts_of(wanted) if wanted else {}
        targets: list[list[tuple[Contact, str]]] = []
        for notice in notices:
            pairs: dict[tuple[str, str], Contact] = {}
            for subscription in subscriptions[notice.unit_code]:
                if notice.kind not in subscription.event_kinds:
                    continue
                for contact in contacts.get(notice.unit_code, ()):
                    if subscription.reaches(contact):
                        for channel in subscription.channels:
                            pairs[(contact.id, channel)] = contact
            targets.append([(contact, channel) for (_, channel), contact in sorted(pairs.items())])
        return targets

    def _job(self, notice: Notice, contact: Contact, channel: str, now: datetime) -> Doc:
        """The job to record (a redelivery finds it recorded)."""
        not_before = now
        if channel in PERSONAL_CHANNELS and not notice.urgent:
            not_before = hold_until(now, self._quiet)
        return {
            "_id": derived_event_id(notice.source_id, contact.id, channel),
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
