"""notification-service's store: every collection of the service, its indexes and queries.

    store = NotificationStore(deps.db)        # notices, contacts, groups, subscriptions, jobs
    jobs = JobStore(deps.db)                  # the channel workers' jobs and attempts
    reminders = ReminderStore(deps.db)        # due-date reminders and their stop markers
    await store.create_indexes()              # ... and each one's create_indexes()
    page = await store.notifications(unit, after=key, limit=51)

What the API sees comes back as typed records; the workers' and the scheduler's stored
fields are listed where they are written (notifier.py, reminders.py).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING, IndexModel

from lienthong_kit.infra import DuplicateKeyError
from lienthong_kit.mongo import AsyncCollection, AsyncDatabase, Doc, ensure_indexes, insert_all
from lienthong_kit.paging import TimeKey, after_time_key

__all__ = [
    "Contact",
    "FailedJob",
    "Group",
    "JobStore",
    "Notification",
    "NotificationStore",
    "ReminderStore",
    "ScheduledJob",
    "Subscription",
]


@dataclass(frozen=True)
class Notification:
    """An in-app notice of a unit."""

    id: str
    unit_code: str
    channel: str
    kind: str
    urgent: bool
    title: str
    body: str
    document_id: str
    created_at: datetime
    read: bool = False

    @classmethod
    def of(cls, row: Doc) -> Notification:
        return cls(
            id=row["_id"],
            unit_code=row["unit_code"],
            channel=row["channel"],
            kind=row.get("kind", "delivery.created"),
            urgent=row.get("urgent", False),
            title=row["title"],
            body=row["body"],
            document_id=row["document_id"],
            created_at=row["created_at"],
            read=row["read"],
        )

    def row(self) -> Doc:
        return {
            "_id": self.id,
            "unit_code": self.unit_code,
            "channel": self.channel,
            "kind": self.kind,
            "urgent": self.urgent,
            "title": self.title,
            "body": self.body,
            "document_id": self.document_id,
            "created_at": self.created_at,
            "read": self.read,
        }


@dataclass(frozen=True)
class Contact:
    """A person of a unit who may be told on e-mail, SMS or a webhook."""

    id: str
    unit_code: str
    name: str
    role: str
    email: str = ""
    phone: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    group_codes: tuple[str, ...] = ()

    @classmethod
    def of(cls, row: Doc) -> Contact:
        return cls(
            id=row["_id"],
            unit_code=row["unit_code"],
            name=row["name"],
            role=row["role"],
            email=row.get("email", ""),
            phone=row.get("phone", ""),
            webhook_url=row.get("webhook_url", ""),
            webhook_secret=row.get("webhook_secret", ""),
            group_codes=tuple(row.get("group_codes", ())),
        )

    def address(self, channel: str) -> str:
        """Where ``channel`` reaches this contact ("" when it does not)."""
        return {"email": self.email, "sms": self.phone, "webhook": self.webhook_url}[channel]


@dataclass(frozen=True)
class Group:
    """A unit's group of contacts (phòng ban), by its code."""

    unit_code: str
    code: str
    name: str


@dataclass(frozen=True)
class Subscription:
    """Which kinds a contact or a group hears of, on which channels."""

    unit_code: str
    contact_id: str
    group_code: str
    event_kinds: tuple[str, ...]
    channels: tuple[str, ...]

    @property
    def target(self) -> str:
        """The subscription's id within its unit: ``contact:<id>`` or ``group:<code>``."""
        if self.contact_id:
            return f"contact:{self.contact_id}"
        return f"group:{self.group_code}"

    def reaches(self, contact: Contact) -> bool:
        if self.contact_id:
            return contact.id == self.contact_id
        return self.group_code in contact.group_codes

    @classmethod
    def of(cls, row: Doc) -> Subscription:
        return cls(
            unit_code=row["unit_code"],
            contact_id=row.get("contact_id", ""),
            group_code=row.get("group_code", ""),
            event_kinds=tuple(row["event_kinds"]),
            channels=tuple(row["channels"]),
        )


@dataclass(frozen=True)
class FailedJob:
    """A channel job given up after its attempts (a dead letter)."""

    id: str
    unit_code: str
    contact_id: str
    channel: str
    kind: str
    title: str
    attempts: int
    reason: str
    created_at: datetime
    failed_at: datetime

    @classmethod
    def of(cls, row: Doc) -> FailedJob:
        return cls(
            id=row["_id"],
            unit_code=row["unit_code"],
            contact_id=row["contact_id"],
            channel=row["channel"],
            kind=row["kind"],
            title=row["title"],
            attempts=row["attempts"],
            reason=row["last_error"],
            created_at=row["created_at"],
            failed_at=row["failed_at"],
        )


def _group_key(unit: str, code: str) -> str:
    return f"{unit}/{code}"


def _subscription_key(unit: str, target: str) -> str:
    return f"{unit}/{target}"


def carried_contact_id(contact_id: str, successor: str) -> str:
    """The id of ``contact_id``'s copy at ``successor``: the same on every repeat."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lienthong:carried/{contact_id}/{successor}"))


def _contact_row(contact: Contact) -> Doc:
    return {
        "_id": contact.id,
        "unit_code": contact.unit_code,
        "name": contact.name,
        "role": contact.role,
        "email": contact.email,
        "phone": contact.phone,
        "webhook_url": contact.webhook_url,
        "webhook_secret": contact.webhook_secret,
        "group_codes": list(contact.group_codes),
        "updated_at": datetime.now(UTC),
    }


def _subscription_row(subscription: Subscription) -> Doc:
    return {
        "_id": _subscription_key(subscription.unit_code, subscription.target),
        "target": subscription.target,
        "unit_code": subscription.unit_code,
        "contact_id": subscription.contact_id,
        "group_code": subscription.group_code,
        "event_kinds": list(subscription.event_kinds),
        "channels": list(subscription.channels),
    }


async def _insert_new(collection: AsyncCollection[Doc], row: Doc) -> int:
    """1 when ``row`` was stored, 0 when its key already was (kept as it is)."""
    try:
        await collection.insert_one(row)
    except DuplicateKeyError:
        return 0
    return 1


class NotificationStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._notifications = db["notifications"]
        self._contacts = db["contacts"]
        self._groups = db["groups"]
        self._subscriptions = db["subscriptions"]
        self._jobs = db["jobs"]

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self._notifications,
            [
                IndexModel([("unit_code", ASCENDING), ("created_at", DESCENDING)]),
                IndexModel([("unit_code", ASCENDING), ("read", ASCENDING)]),
            ],
        )
        await ensure_indexes(self._contacts, [IndexModel([("unit_code", ASCENDING)])])
        await ensure_indexes(self._groups, [IndexModel([("unit_code", ASCENDING)])])
        await ensure_indexes(self._subscriptions, [IndexModel([("unit_code", ASCENDING)])])
        await ensure_indexes(
            self._jobs,
            [
                IndexModel([("channel", ASCENDING), ("state", ASCENDING)]),
                IndexModel([("unit_code", ASCENDING), ("state", ASCENDING)]),
            ],
        )

    # --- in-app notices -------------------------------------------------------------------

    async def add_notifications(self, notifications: list[Notification]) -> list[bool]:
        """Store the notices in one write; per notice, False when it was already stored."""
        refused = await insert_all(self._notifications, [n.row() for n in notifications])
        return [index not in refused for index in range(len(notifications))]

    async def notification(self, notification_id: str) -> Notification | None:
        row = await self._notifications.find_one({"_id": notification_id})
        return None if row is None else Notification.of(row)

    async def notifications(
        self, unit: str, *, unread_only: bool = False, after: TimeKey | None, limit: int
    ) -> list[Notification]:
        """A unit's notices newest first, those after ``after`` (keyset paging)."""
        query: Doc = {"unit_code": unit, **after_time_key(after, "created_at")}
        if unread_only:
            query["read"] = False
        cursor = (
            self._notifications.find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [Notification.of(row) async for row in cursor]

    async def mark_read(self, unit: str, ids: list[str]) -> int:
        """Mark the unit's unread notices among ``ids`` read; how many were."""
        marked = 0
        for notification_id in dict.fromkeys(ids):
            result = await self._notifications.update_one(
                {"_id": notification_id, "unit_code": unit, "read": False},
                {"$set": {"read": True, "read_at": datetime.now(UTC)}},
            )
            marked += result.modified_count
        return marked

    # --- contacts -------------------------------------------------------------------------

    async def contact(self, contact_id: str) -> Contact | None:
        row = await self._contacts.find_one({"_id": contact_id})
        return None if row is None else Contact.of(row)

    async def contacts_of(self, units: list[str]) -> dict[str, list[Contact]]:
        """The contacts of each of ``units`` (one query), each unit's by name."""
        found: dict[str, list[Contact]] = {unit: [] for unit in units}
        async for row in self._contacts.find(_units_filter(units)):
            found.setdefault(row["unit_code"], []).append(Contact.of(row))
        for rows in found.values():
            rows.sort(key=lambda contact: (contact.name, contact.id))
        return found

    async def contacts(self, unit: str) -> list[Contact]:
        """The unit's contacts by name."""
        return (await self.contacts_of([unit]))[unit]

    async def put_contact(self, contact: Contact) -> None:
        await self._contacts.replace_one({"_id": contact.id}, _contact_row(contact), upsert=True)

    async def delete_contact(self, unit: str, contact_id: str) -> None:
        """The contact and its own subscription."""
        await self.delete_subscription(unit, f"contact:{contact_id}")
        await self._contacts.delete_one({"_id": contact_id})

    # --- groups ---------------------------------------------------------------------------

    async def group(self, unit: str, code: str) -> Group | None:
        row = await self._groups.find_one({"_id": _group_key(unit, code)})
        return None if row is None else Group(row["unit_code"], row["code"], row["name"])

    async def groups(self, unit: str) -> list[Group]:
        """The unit's groups by code."""
        rows = [row async for row in self._groups.find({"unit_code": unit})]
        return sorted(
            (Group(row["unit_code"], row["code"], row["name"]) for row in rows),
            key=lambda group: group.code,
        )

    async def put_group(self, group: Group) -> None:
        key = _group_key(group.unit_code, group.code)
        row = {"_id": key, "unit_code": group.unit_code, "code": group.code, "name": group.name}
        await self._groups.replace_one({"_id": key}, row, upsert=True)

    async def delete_group(self, unit: str, code: str) -> None:
        """The group and its subscription."""
        await self.delete_subscription(unit, f"group:{code}")
        await self._groups.delete_one({"_id": _group_key(unit, code)})

    # --- subscriptions --------------------------------------------------------------------

    async def subscription(self, unit: str, target: str) -> Subscription | None:
        row = await self._subscriptions.find_one({"_id": _subscription_key(unit, target)})
        return None if row is None else Subscription.of(row)

    async def subscriptions_of(self, units: list[str]) -> dict[str, list[Subscription]]:
        """The subscriptions of each of ``units`` (one query), each unit's by target."""
        found: dict[str, list[Subscription]] = {unit: [] for unit in units}
        async for row in self._subscriptions.find(_units_filter(units)):
            found.setdefault(row["unit_code"], []).append(Subscription.of(row))
        for rows in found.values():
            rows.sort(key=lambda subscription: subscription.target)
        return found

    async def subscriptions(self, unit: str) -> list[Subscription]:
        """The unit's subscriptions by target."""
        return (await self.subscriptions_of([unit]))[unit]

    async def put_subscription(self, subscription: Subscription) -> None:
        row = _subscription_row(subscription)
        await self._subscriptions.replace_one({"_id": row["_id"]}, row, upsert=True)

    async def delete_subscription(self, unit: str, target: str) -> None:
        await self._subscriptions.delete_one({"_id": _subscription_key(unit, target)})

    # --- a registry transition ------------------------------------------------------------

    async def carry_over(self, closed: str, successor: str) -> tuple[int, int, int]:
        """Copy ``closed``'s groups, contacts and subscriptions to ``successor``: (groups,
        contacts, subscriptions) newly stored. What the successor already has is kept (its own
        group of the same code, a subscription of the same target), so a repeat adds nothing."""
        groups = contacts = subscriptions = 0
        for group in await self.groups(closed):
            row = {"_id": _group_key(successor, group.code), "unit_code": successor,
                   "code": group.code, "name": group.name}  # fmt: skip
            groups += await _insert_new(self._groups, row)
        renamed: dict[str, str] = {}
        for contact in await self.contacts(closed):
            copy = replace(
                contact, id=carried_contact_id(contact.id, successor), unit_code=successor
            )
            renamed[contact.id] = copy.id
            contacts += await _insert_new(self._contacts, _contact_row(copy))
        for subscription in await self.subscriptions(closed):
            if subscription.contact_id and subscription.contact_id not in renamed:
                continue  # its contact was deleted since: nothing to reach
            copied = replace(
                subscription,
                unit_code=successor,
                contact_id=renamed.get(subscription.contact_id, ""),
            )
            subscriptions += await _insert_new(self._subscriptions, _subscription_row(copied))
        return groups, contacts, subscriptions

    # --- channel jobs ---------------------------------------------------------------------

    async def add_jobs(self, jobs: list[Doc]) -> None:
        """Record channel jobs in one write; those already recorded are kept."""
        await insert_all(self._jobs, jobs)

    async def failed_jobs(self, unit: str, *, channel: str = "", limit: int) -> list[FailedJob]:
        """The unit's dead-lettered jobs (of ``channel``, if given), most recent first."""
        query: Doc = {"unit_code": unit, "state": "dead"}
        if channel:
            query["channel"] = channel
        rows = [FailedJob.of(row) async for row in self._jobs.find(query)]
        rows.sort(key=lambda job: job.failed_at, reverse=True)
        return rows[:limit]


@dataclass(frozen=True)
class ScheduledJob:
    """What a channel worker schedules a pending job by."""

    id: str
    not_before: datetime
    urgent: bool

    @classmethod
    def of(cls, row: Doc) -> ScheduledJob:
        return cls(row["_id"], row["not_before"], bool(row.get("urgent", False)))


_SCHEDULE_FIELDS = {"channel": 1, "state": 1, "not_before": 1, "urgent": 1}


class JobStore:
    """The channel jobs' states and the claims of their attempts (dispatch.py).

    Attempt ``n`` of job ``j`` is the document ``j#n`` in ``attempts``: whoever inserts it
    owns that attempt.
    """

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._jobs = db["jobs"]
        self._attempts = db["attempts"]

    async def create_indexes(self) -> None:
        await ensure_indexes(self._attempts, [IndexModel([("job_id", ASCENDING)])])

    async def pending(self, channel: str) -> list[ScheduledJob]:
        """Every pending job of ``channel``."""
        query = {"channel": channel, "state": "pending"}
        return [
            ScheduledJob.of(row)
            async for row in self._jobs.find(query, {"not_before": 1, "urgent": 1})
        ]

    async def pending_job(self, job_id: str, channel: str) -> ScheduledJob | None:
        """The job when it is a pending job of ``channel``."""
        row = await self._jobs.find_one({"_id": job_id}, _SCHEDULE_FIELDS)
        if row is None or row["channel"] != channel or row["state"] != "pending":
            return None
        return ScheduledJob.of(row)

    async def job(self, job_id: str) -> Doc | None:
        return await self._jobs.find_one({"_id": job_id})

    async def claim(self, job_id: str, number: int, owner: str) -> bool:
        """Own attempt ``number`` of the job; False when someone inserted it first."""
        try:
            await self._attempts.insert_one(
                {
                    "_id": f"{job_id}#{number}",
                    "job_id": job_id,
                    "number": number,
                    "owner": owner,
                    "started_at": datetime.now(UTC),
                    "outcome": "",
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def attempt(self, job_id: str, number: int) -> Doc | None:
        return await self._attempts.find_one({"_id": f"{job_id}#{number}"})

    async def finish_attempt(self, job_id: str, number: int, outcome: str, reason: str) -> None:
        await self._attempts.update_one(
            {"_id": f"{job_id}#{number}"},
            {"$set": {"outcome": outcome, "reason": reason, "ended_at": datetime.now(UTC)}},
        )

    async def retry_later(
        self, job_id: str, *, attempts: int, reason: str, not_before: datetime
    ) -> None:
        await self._jobs.update_one(
            {"_id": job_id},
            {"$set": {"attempts": attempts, "last_error": reason, "not_before": not_before}},
        )

    async def sent(self, job_id: str, *, attempts: int, sent_at: datetime) -> None:
        await self._jobs.update_one(
            {"_id": job_id},
            {"$set": {"state": "sent", "attempts": attempts, "sent_at": sent_at}},
        )

    async def dead(self, job_id: str, *, attempts: int, reason: str) -> None:
        await self._jobs.update_one(
            {"_id": job_id},
            {
                "$set": {
                    "state": "dead",
                    "attempts": attempts,
                    "last_error": reason,
                    "failed_at": datetime.now(UTC),
                }
            },
        )


class ReminderStore:
    """Due-date reminders (``pending`` -> ``fired`` | ``cancelled`` | ``failed``) and the
    deliveries that need none any more (reminders.py)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._reminders = db["reminders"]
        self._stops = db["reminder_stops"]

    async def create_indexes(self) -> None:
        await ensure_indexes(self._reminders, [IndexModel([("state", ASCENDING)])])

    async def add_many(self, reminders: list[Doc]) -> None:
        """Store reminders in one write; those already stored under their keys are kept."""
        await insert_all(self._reminders, reminders)

    async def stop(self, delivery_id: str, code: str) -> None:
        """The delivery needs no more reminders (the first stop is kept)."""
        with contextlib.suppress(DuplicateKeyError):
            stop = {"_id": delivery_id, "code": code, "at": datetime.now(UTC)}
            await self._stops.insert_one(stop)

    async def stopped(self, delivery_id: str) -> bool:
        return await self._stops.find_one({"_id": delivery_id}) is not None

    async def pending(self) -> list[tuple[str, datetime]]:
        """(id, fire at) of every pending reminder."""
        # equality on the indexed state; the caller compares times (FerretDB v1 scans ranges)
        return [
            (row["_id"], row["fire_at"])
            async for row in self._reminders.find({"state": "pending"}, {"fire_at": 1})
        ]

    async def pending_for(self, unit: str) -> int:
        """How many of ``unit``'s reminders are still to fire."""
        return await self._reminders.count_documents({"unit_code": unit, "state": "pending"})

    async def reminder(self, reminder_id: str) -> Doc | None:
        return await self._reminders.find_one({"_id": reminder_id})

    async def settle(self, reminder_id: str, state: str, at: datetime, *, reason: str = "") -> None:
        settled: Doc = {"state": state, "settled_at": at}
        if reason:
            settled["reason"] = reason
        await self._reminders.update_one({"_id": reminder_id}, {"$set": settled})


def _units_filter(units: list[str]) -> Doc:
    # one unit by equality: FerretDB answers it from the lookup index ($in may scan)
    return {"unit_code": units[0]} if len(units) == 1 else {"unit_code": {"$in": units}}
