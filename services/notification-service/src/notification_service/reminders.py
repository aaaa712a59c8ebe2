"""Due-date reminders: scheduled in the store, fired by a scheduler on an injectable clock.

A delivery with a due date (hạn xử lý) gets one reminder record per configured lead time and
one for the overdue notice, each under its own key::

    <delivery_id>:due:3      fires 3 days before the due date
    <delivery_id>:due:1      fires 1 day before
    <delivery_id>:overdue    fires at the due date

The scheduler looks every ``LIENTHONG_REMINDER_POLL_SECONDS`` for pending reminders whose time
has come (by its clock), records their notices (keyed by the reminder id, so firing again after
a crash or on two replicas adds nothing), then marks them fired. A delivery that is done (06),
refused (02) or withdrawn by an accepted recall (15) gets a stop marker; its pending
reminders are cancelled instead of fired. Lead times whose moment had already passed when the
delivery arrived are not scheduled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from lienthong.events.v1.events_pb2 import DeliveryCreated, DeliveryStatusChanged
from lienthong_kit.infra import every, is_infra_error
from lienthong_kit.logs import get_logger
from lienthong_kit.mongo import Doc
from lienthong_kit.vocabulary import StatusCode
from notification_service.messages import Notice, reminder_notice
from notification_service.store import ReminderStore
from notification_service.timing import Clock

__all__ = ["SETTLED", "Reminders"]

log = get_logger(__name__)

# Reported codes after which nobody needs reminding.
SETTLED = (StatusCode.REFUSED, StatusCode.DONE, StatusCode.RECALL_ACCEPTED)


class Reminders:
    def __init__(
        self,
        store: ReminderStore,
        *,
        clock: Clock,
        lead_days: tuple[int, ...],
        overdue: bool,
        poll_seconds: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self._leads = tuple(sorted(set(lead_days), reverse=True))
        self._overdue = overdue
        self._poll = poll_seconds
        self._fire: Callable[[Notice], Awaitable[None]] | None = None

    async def schedule(self, delivery: DeliveryCreated, arrived_at: datetime) -> None:
        """Store the reminders of a new delivery (idempotent)."""
        await self._store.add_many(self.plan(delivery, arrived_at))

    async def schedule_many(self, reminders: list[Doc]) -> None:
        """Store planned reminders (of :meth:`plan`) in one write (idempotent)."""
        await self._store.add_many(reminders)

    def plan(self, delivery: DeliveryCreated, arrived_at: datetime) -> list[Doc]:
        """The reminders a new delivery needs (none without a due date); ValueError or
        OverflowError for a due date outside the calendar."""
        document = delivery.document
        if not document.HasField("due_at"):
            return []
        due = document.due_at.ToDatetime(UTC)
        plan: list[tuple[str, datetime, int, bool]] = [
            (f"{delivery.delivery_id}:due:{lead}", due - timedelta(days=lead), lead, False)
            for lead in self._leads
        ]
        if self._overdue:
            plan.append((f"{delivery.delivery_id}:overdue", due, 0, True))
        return [
            {
                "_id": key,
                "state": "pending",
                "fire_at": fire_at,
                "lead_days": lead,
                "overdue": overdue,
                "unit_code": delivery.recipient_code,
                "delivery_id": delivery.delivery_id,
                "document": document.SerializeToString(),
                "created_at": datetime.now(UTC),
            }
            for key, fire_at, lead, overdue in plan
            # that moment had passed when the document arrived
            if overdue or fire_at > arrived_at
        ]

    async def stop_if_settled(self, changed: DeliveryStatusChanged) -> None:
        code = changed.reported_code or changed.status_code
        if code in SETTLED or changed.status_code == StatusCode.DONE:
            await self._store.stop(changed.delivery_id, code)

    # --- the scheduler --------------------------------------------------------------------

    def on_fire(self, fire: Callable[[Notice], Awaitable[None]]) -> None:
        self._fire = fire

    async def run(self) -> None:
        """Fire due reminders until cancelled (a background task of the service)."""
        await every(self._poll, self.fire_due, task="reminders")

    async def fire_due(self) -> int:
        """Fire every pending reminder whose time has come; returns how many fired."""
        fire = self._fire
        if fire is None:
            raise RuntimeError("on_fire() first")
        now = self._clock.now()
        # pending reminders are few: they leave the set as they fire
        due = sorted(
            (fire_at, reminder_id)
            for reminder_id, fire_at in await self._store.pending()
            if fire_at <= now
        )
        fired = 0
        for _, reminder_id in due:
            try:
                fired += await self._fire_one(fire, reminder_id, now)
            except Exception as exc:
                if is_infra_error(exc):
                    raise  # the store or Kafka is down: not the reminder's fault; next tick
                # one bad reminder must not stop the others
                log.exception("reminder_failed", reminder=reminder_id)
                await self._store.settle(reminder_id, "failed", now, reason=f"{exc!r}")
        return fired

    async def _fire_one(
        self, fire: Callable[[Notice], Awaitable[None]], reminder_id: str, now: datetime
    ) -> int:
        reminder = await self._store.reminder(reminder_id)
        if reminder is None or reminder["state"] != "pending":
            return 0
        if await self._store.stopped(reminder["delivery_id"]):
            await self._store.settle(reminder_id, "cancelled", now)
            return 0
        await fire(reminder_notice(reminder, overdue=reminder["overdue"]))
        await self._store.settle(reminder_id, "fired", now)
        log.info("reminder_fired", reminder=reminder["_id"], unit=reminder["unit_code"])
        return 1
