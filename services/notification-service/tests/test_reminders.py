"""Due-date reminders under a controllable clock, across a restart of the service, with the
real Kafka, the real store and an SMS gateway on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import grpc
import pytest
from pymongo.errors import OperationFailure

from lienthong.common.v1.common_pb2 import DocumentCode, DocumentSummary
from lienthong.events.v1.events_pb2 import DeliveryCreated, DeliveryStatusChanged
from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong_kit.envelope import new_event
from lienthong_kit.mongo import connect
from lienthong_kit.server import ServiceApp
from lienthong_testing.settings import isolated_settings
from lienthong_testing.waiting import eventually, wait_until
from notification_service.__main__ import NAME, build
from notification_service.messages import Notice
from notification_service.reminders import Reminders
from notification_service.settings import Settings
from notification_service.store import ReminderStore
from notification_service.timing import ManualClock

RECIPIENT = "000.01.00.H23"
SENDER = "000.00.00.H23"
FAST = {
    "LIENTHONG_NOTIFY_POLL_SECONDS": "0.05",
    "LIENTHONG_QUIET_HOURS": "",
    "LIENTHONG_REMINDER_POLL_SECONDS": "0.05",
    "LIENTHONG_REMINDER_LEAD_DAYS": "3,1",
}
METADATA = (("x-lienthong-unit", RECIPIENT),)

Starter = Callable[[ManualClock], Awaitable[ServiceApp]]


@pytest.fixture
async def service(
    infra: None, prefix: str, http_server: Callable[[], Awaitable[Any]]
) -> AsyncIterator[tuple[Starter, Any]]:
    """Start (and restart) the service on the same store and topics, with a given clock."""
    gateway = await http_server()
    settings = isolated_settings(Settings, prefix, {**FAST, "LIENTHONG_SMS_URL": gateway.url})
    running: list[ServiceApp] = []

    async def start(clock: ManualClock) -> ServiceApp:
        for app in running:
            await app.stop()
        running.clear()
        app = ServiceApp(NAME, settings, partial(build, clock=clock))
        await app.start()
        running.append(app)
        return app

    yield start, gateway
    for app in running:
        await app.stop()


def due_delivery(due: datetime, delivery_id: str = "dl-due") -> DeliveryCreated:
    document = DocumentSummary(
        document_id=f"doc-{delivery_id}",
        sender_code=SENDER,
        code=DocumentCode(number="27", notation="KH-UBND"),
        subject="Kế hoạch chuyển đổi số năm 2027",
        priority=0,
    )
    document.due_at.FromDatetime(due)
    return DeliveryCreated(delivery_id=delivery_id, recipient_code=RECIPIENT, document=document)


async def titles(app: ServiceApp) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        reply = await NotificationServiceStub(channel).ListNotifications(
            pb.ListNotificationsRequest(page_size=200), metadata=METADATA
        )
    return sorted(n.title for n in reply.notifications)


async def reminder_states(app: ServiceApp) -> dict[str, str]:
    return {row["_id"]: row["state"] async for row in app.db["reminders"].find({})}


async def subscribe_to_reminders(app: ServiceApp) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        contact = await stub.PutContact(
            pb.PutContactRequest(
                contact=pb.Contact(name="Lê Văn Cường", role="leader", phone="0987654321")
            ),
            metadata=METADATA,
        )
        await stub.Subscribe(
            pb.SubscribeRequest(
                subscription=pb.Subscription(
                    contact_id=contact.contact.contact_id,
                    event_kinds=["reminder.due", "reminder.overdue"],
                    channels=["sms"],
                )
            ),
            metadata=METADATA,
        )


THREE_DAYS = "Nhắc hạn xử lý: văn bản số 27/KH-UBND còn 3 ngày"
ONE_DAY = "Nhắc hạn xử lý: văn bản số 27/KH-UBND còn 1 ngày"
OVERDUE = "Quá hạn xử lý: văn bản số 27/KH-UBND"
NEW = "Văn bản đến mới (Thường): số 27/KH-UBND"


async def test_reminders_fire_at_their_lead_times_once_across_a_restart(
    service: tuple[Starter, Any],
) -> None:
    start, gateway = service
    now = datetime.now(UTC).replace(microsecond=0)
    due = now + timedelta(days=5)
    clock = ManualClock(now)
    app = await start(clock)
    await subscribe_to_reminders(app)
    envelope = new_event(due_delivery(due), producer="routing-service")
    await app.producer.publish(app.topics.deliveries, key=RECIPIENT, envelope=envelope)
    await eventually(lambda: reminder_states(app), until=lambda states: len(states) == 3)

    clock.set(due - timedelta(days=3) + timedelta(minutes=1))
    await eventually(lambda: titles(app), until=lambda found: THREE_DAYS in found)
    await wait_until(lambda: len(gateway.accepted) == 1)
    states = await eventually(  # the scheduler marks a reminder fired after recording it
        lambda: reminder_states(app), until=lambda found: "fired" in found.values()
    )
    assert states == {
        "dl-due:due:3": "fired",
        "dl-due:due:1": "pending",
        "dl-due:overdue": "pending",
    }

    # restart: a new process, its clock where the old one was, then one day before the due date
    clock = ManualClock(due - timedelta(days=3) + timedelta(minutes=1))
    app = await start(clock)
    await app.producer.publish(app.topics.deliveries, key=RECIPIENT, envelope=envelope)  # again
    clock.set(due - timedelta(days=1) + timedelta(minutes=1))
    await eventually(lambda: titles(app), until=lambda found: ONE_DAY in found)
    clock.set(due + timedelta(minutes=1))
    await eventually(lambda: titles(app), until=lambda found: OVERDUE in found)

    # a process that died after recording a reminder's notices and before marking it fired
    # fires it again: nothing is added
    await app.db["reminders"].update_one({"_id": "dl-due:due:3"}, {"$set": {"state": "pending"}})
    await eventually(
        lambda: reminder_states(app), until=lambda states: set(states.values()) == {"fired"}
    )
    await eventually(
        lambda: _sms_states(app), until=lambda states: states == ["sent", "sent", "sent"]
    )
    assert await titles(app) == sorted([NEW, THREE_DAYS, ONE_DAY, OVERDUE])
    texts = sorted(json.loads(body)["message"].split(".")[0] for body in gateway.accepted)
    assert texts == sorted([THREE_DAYS, ONE_DAY, OVERDUE])


async def _sms_states(app: ServiceApp) -> list[str]:
    return sorted([row["state"] async for row in app.db["jobs"].find({"channel": "sms"})])


async def test_a_completed_delivery_is_not_reminded(service: tuple[Starter, Any]) -> None:
    start, _ = service
    now = datetime.now(UTC).replace(microsecond=0)
    due = now + timedelta(days=2)  # the 3-day lead had passed on arrival: not scheduled
    clock = ManualClock(now)
    app = await start(clock)
    created = due_delivery(due, "dl-done")
    await app.producer.publish(
        app.topics.deliveries, key=RECIPIENT, envelope=new_event(created, producer="routing")
    )
    done = DeliveryStatusChanged(
        delivery_id="dl-done",
        document=created.document,
        recipient_code=RECIPIENT,
        status_code="06",
        previous_status_code="05",
        reported_code="06",
    )
    await app.producer.publish(
        app.topics.deliveries, key=RECIPIENT, envelope=new_event(done, producer="document")
    )
    await eventually(
        lambda: app.db["reminder_stops"].find_one({"_id": "dl-done"}),
        until=lambda row: row is not None,
    )

    clock.set(due + timedelta(minutes=1))
    states = await eventually(
        lambda: reminder_states(app),
        until=lambda found: bool(found) and "pending" not in found.values(),
    )

    assert states == {"dl-done:due:1": "cancelled", "dl-done:overdue": "cancelled"}
    assert await titles(app) == [NEW]


async def test_a_reminder_that_meets_the_store_down_stays_pending(prefix: str, infra: None) -> None:
    settings = isolated_settings(Settings, prefix, FAST)
    client = connect(settings.mongo_url, app_name="test")
    store = ReminderStore(client[f"{settings.mongo_database_prefix}notification"])
    now = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(now)
    reminders = Reminders(store, clock=clock, lead_days=(1,), overdue=False, poll_seconds=0.05)
    await reminders.schedule(due_delivery(now + timedelta(days=2)), arrived_at=now)
    fired: list[Notice] = []

    async def record(notice: Notice) -> None:
        fired.append(notice)
        if len(fired) == 1:  # as FerretDB answers while its PostgreSQL restarts
            raise OperationFailure("terminating connection (SQLSTATE 57P01)", code=1)

    reminders.on_fire(record)
    clock.advance(days=1, seconds=1)
    try:
        # an outage is not the reminder's fault: it is not settled as failed for good
        with pytest.raises(OperationFailure):
            await reminders.fire_due()
        assert (await store.reminder("dl-due:due:1") or {})["state"] == "pending"
        assert await reminders.fire_due() == 1
        assert (await store.reminder("dl-due:due:1") or {})["state"] == "fired"
    finally:
        await client.close()
