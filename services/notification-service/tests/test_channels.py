"""notification-service end to end within the service: events in from the real Kafka, the
real store, and real servers on loopback receiving the e-mail, the SMS and the webhook."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from lienthong.common.v1.common_pb2 import DocumentCode, DocumentSummary
from lienthong.events.v1.events_pb2 import DeliveryCreated
from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong_kit.envelope import new_event
from lienthong_kit.paging import encode_token
from lienthong_kit.server import ServiceApp
from lienthong_testing.waiting import eventually, wait_until
from notification_service.__main__ import NAME, build
from notification_service.settings import Settings
from notification_service.timing import Clock

DOCS = Path(__file__).resolve().parents[3] / "docs"
RECIPIENT = "000.01.00.H23"
SENDER = "000.00.00.H23"
SECRET = "webhook-secret-for-tests-0123456789"
FAST = {
    "LIENTHONG_NOTIFY_BACKOFF_SECONDS": "0.05",
    "LIENTHONG_NOTIFY_BACKOFF_MAX_SECONDS": "0.2",
    "LIENTHONG_NOTIFY_POLL_SECONDS": "0.05",
    "LIENTHONG_NOTIFY_MAX_ATTEMPTS": "3",
    "LIENTHONG_QUIET_HOURS": "",
    "LIENTHONG_REMINDER_POLL_SECONDS": "0.05",
    "LIENTHONG_NOTIFY_SEND_TIMEOUT_SECONDS": "5.0",
    # the test receivers listen on loopback, which webhooks may not call unless allowed
    "LIENTHONG_NOTIFY_WEBHOOK_ALLOW": "127.0.0.1/32",
}


def as_unit(unit: str = RECIPIENT) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", unit),)


def delivery(
    delivery_id: str = "dl-1", *, priority: int = 3, number: str = "15"
) -> DeliveryCreated:
    return DeliveryCreated(
        delivery_id=delivery_id,
        recipient_code=RECIPIENT,
        document=DocumentSummary(
            document_id=f"doc-{delivery_id}",
            sender_code=SENDER,
            code=DocumentCode(number=number, notation="CĐ-UBND"),
            subject="Về việc ứng phó bão số 3",
            priority=priority,
        ),
    )


def verification_snippet() -> Callable[..., bool]:
    """The webhook check published in docs/notification.md, as a receiver would copy it."""
    text = (DOCS / "notification.md").read_text()
    match = re.search(r"<!-- webhook-verification -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/notification.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "docs/notification.md", "exec"), namespace)  # noqa: S102
    return namespace["verify_webhook"]  # type: ignore[no-any-return]


def counter(name: str, channel: str) -> float:
    return REGISTRY.get_sample_value(name, {"channel": channel}) or 0.0


StartService = Callable[..., Awaitable[ServiceApp]]
HttpServers = Callable[[], Awaitable[Any]]  # conftest.http_server: starts an HttpRecorder


async def start(
    start_service: StartService, clock: Clock | None = None, env: dict[str, str] | None = None
) -> ServiceApp:
    """The service with FAST's settings and ``env`` (LIENTHONG_* variables) on ``clock``."""
    return await start_service(NAME, partial(build, clock=clock), Settings, {**FAST, **(env or {})})


async def subscribe(
    app: ServiceApp, *, channels: list[str], kinds: list[str], webhook_url: str = ""
) -> str:
    """A group (phòng ban), a clerk in it and the group's subscription; the clerk's id."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        await stub.PutGroup(
            pb.PutGroupRequest(group=pb.Group(code="van-thu", name="Văn thư")),
            metadata=as_unit(),
        )
        contact = pb.Contact(
            name="Nguyễn Thị Hoa",
            role="clerk",
            email="hoa@sotc.hoabinh.gov.vn",
            phone="0912 345 678",
            group_codes=["van-thu"],
        )
        if webhook_url:
            contact.webhook_url = webhook_url
            contact.webhook_secret = SECRET
        reply = await stub.PutContact(pb.PutContactRequest(contact=contact), metadata=as_unit())
        await stub.Subscribe(
            pb.SubscribeRequest(
                subscription=pb.Subscription(
                    group_code="van-thu", event_kinds=kinds, channels=channels
                )
            ),
            metadata=as_unit(),
        )
        return reply.contact.contact_id


async def publish(app: ServiceApp, event: DeliveryCreated, times: int = 1) -> None:
    envelope = new_event(event, producer="routing-service")
    for _ in range(times):
        await app.producer.publish(
            app.topics.deliveries, key=event.recipient_code, envelope=envelope
        )


async def jobs(app: ServiceApp, channel: str) -> list[dict[str, Any]]:
    return [row async for row in app.db["jobs"].find({"channel": channel})]


async def test_email_sms_and_webhook_arrive_once_however_often_the_event_comes(
    start_service: StartService, smtp_server: Any, http_server: HttpServers
) -> None:
    gateway, receiver = await http_server(), await http_server()
    verify = verification_snippet()
    receiver.check = lambda headers, body: verify(SECRET, headers, body)
    app = await start(
        start_service,
        env={
            "LIENTHONG_SMTP_HOST": "127.0.0.1",
            "LIENTHONG_SMTP_PORT": str(smtp_server.port),
            "LIENTHONG_SMS_URL": gateway.url,
        },
    )
    await subscribe(
        app,
        channels=["email", "sms", "webhook"],
        kinds=["delivery.created"],
        webhook_url=receiver.url,
    )

    await publish(app, delivery("dl-1"), times=3)  # redelivered: the same event three times
    await publish(app, delivery("dl-2", priority=0, number="16"))  # then another one, in order
    await wait_until(lambda: len(smtp_server.messages) >= 2 and len(gateway.accepted) >= 2)
    await wait_until(lambda: len(receiver.accepted) >= 2)
    await eventually(
        lambda: jobs(app, "sms"), until=lambda rows: all(r["state"] == "sent" for r in rows)
    )

    subjects = sorted(str(m["Subject"]) for m in smtp_server.messages)
    assert subjects == [
        "Văn bản đến mới (Hỏa tốc): số 15/CĐ-UBND",
        "Văn bản đến mới (Thường): số 16/CĐ-UBND",
    ]
    first = next(m for m in smtp_server.messages if "15/" in str(m["Subject"]))
    assert first["To"] == "hoa@sotc.hoabinh.gov.vn"
    assert "Từ 000.00.00.H23: Về việc ứng phó bão số 3" in first.get_content()
    sms = [json.loads(body) for body in gateway.accepted]
    assert sorted(s["to"] for s in sms) == ["+84912345678", "+84912345678"]
    assert any(s["message"].startswith("Văn bản đến mới (Hỏa tốc)") for s in sms)
    assert len(gateway.requests) == 2
    hooks = [json.loads(body) for body in receiver.accepted]
    assert len(receiver.requests) == 2
    assert {h["kind"] for h in hooks} == {"delivery.created"}
    assert {h["facts"]["urgency"] for h in hooks} == {"Hỏa tốc", "Thường"}


async def test_the_webhook_signature_verifies_and_a_replay_is_refused(
    start_service: StartService, http_server: HttpServers
) -> None:
    receiver = await http_server()
    verify = verification_snippet()
    receiver.check = lambda headers, body: verify(SECRET, headers, body)
    app = await start(start_service)
    await subscribe(app, channels=["webhook"], kinds=["delivery.created"], webhook_url=receiver.url)

    await publish(app, delivery())
    await wait_until(lambda: len(receiver.accepted) == 1)

    headers, body = receiver.requests[0]
    timestamp = headers["X-Lienthong-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Lienthong-Signature"] == expected
    assert not verify("another-secret-0123456789", headers, body)
    assert not verify(SECRET, headers, body + b" ")  # tampered body
    stale = str(int(time.time()) - 600)
    replayed = {
        "X-Lienthong-Timestamp": stale,
        "X-Lienthong-Signature": hmac.new(
            SECRET.encode(), f"{stale}.".encode() + body, hashlib.sha256
        ).hexdigest(),
    }
    assert not verify(SECRET, replayed, body)  # correctly signed, but ten minutes old


async def test_a_gateway_failing_twice_then_succeeding_gets_one_sms(
    start_service: StartService, http_server: HttpServers
) -> None:
    gateway = await http_server()
    gateway.behaviour = "fail-twice"
    app = await start(
        start_service,
        env={"LIENTHONG_SMS_URL": gateway.url, "LIENTHONG_NOTIFY_MAX_ATTEMPTS": "5"},
    )
    await subscribe(app, channels=["sms"], kinds=["delivery.created"])
    retried = counter("lienthong_notifications_retried_total", "sms")
    sent = counter("lienthong_notifications_sent_total", "sms")

    await publish(app, delivery())
    [job] = await eventually(
        lambda: jobs(app, "sms"), until=lambda rows: bool(rows) and rows[0]["state"] != "pending"
    )

    assert job["state"] == "sent"
    assert job["attempts"] == 3
    assert len(gateway.requests) == 3
    assert len(gateway.accepted) == 1
    assert counter("lienthong_notifications_retried_total", "sms") - retried == 2
    # counted right after the job is marked sent
    await wait_until(lambda: counter("lienthong_notifications_sent_total", "sms") - sent == 1)
    attempts = [row async for row in app.db["attempts"].find({"job_id": job["_id"]})]
    assert sorted((a["number"], a["outcome"]) for a in attempts) == [
        (1, "failed"),
        (2, "failed"),
        (3, "sent"),
    ]


async def test_a_gateway_that_always_fails_leaves_a_dead_letter_with_the_reason(
    start_service: StartService, http_server: HttpServers
) -> None:
    gateway = await http_server()
    gateway.behaviour = "fail"
    app = await start(
        start_service,
        env={"LIENTHONG_SMS_URL": gateway.url, "LIENTHONG_NOTIFY_MAX_ATTEMPTS": "3"},
    )
    contact_id = await subscribe(app, channels=["sms"], kinds=["delivery.created"])
    failed = counter("lienthong_notifications_failed_total", "sms")

    await publish(app, delivery())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        reply = await eventually(
            lambda: stub.ListFailedNotifications(
                pb.ListFailedNotificationsRequest(), metadata=as_unit()
            ),
            until=lambda r: len(r.notifications) == 1,
        )
        elsewhere = await stub.ListFailedNotifications(
            pb.ListFailedNotificationsRequest(), metadata=as_unit(SENDER)
        )

    [dead] = reply.notifications
    assert (dead.channel, dead.contact_id, dead.attempts) == ("sms", contact_id, 3)
    assert dead.reason == "HTTP 503 from the SMS gateway: gateway overloaded"
    assert dead.title == "Văn bản đến mới (Hỏa tốc): số 15/CĐ-UBND"
    assert len(gateway.requests) == 3
    # counted right after the job is marked dead
    await wait_until(lambda: counter("lienthong_notifications_failed_total", "sms") - failed == 1)
    assert list(elsewhere.notifications) == []  # another unit does not see them


async def test_webhooks_to_internal_addresses_are_refused_when_stored_and_when_sent(
    start_service: StartService, http_server: HttpServers
) -> None:
    receiver = await http_server()
    app = await start(start_service, env={"LIENTHONG_NOTIFY_WEBHOOK_ALLOW": ""})
    refused: dict[str, grpc.aio.AioRpcError] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        for url in (
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5:9200/",
            "http://[::ffff:127.0.0.1]:27017/",
            receiver.url.replace("127.0.0.1", "localhost"),  # a name, judged by its addresses
        ):
            contact = pb.Contact(
                name="Kẻ gian", role="clerk", webhook_url=url, webhook_secret=SECRET
            )
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.PutContact(pb.PutContactRequest(contact=contact), metadata=as_unit())
            refused[url] = failed.value
    for url, error in refused.items():
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, url
        status = rpc_status.from_call(error)
        assert status is not None
        request = error_details_pb2.BadRequest()
        status.details[0].Unpack(request)
        [violation] = request.field_violations
        assert violation.field == "contact.webhook_url", url
        assert "webhooks may not call it" in violation.description, url

    # a name that resolved to a public address when stored and to loopback now (DNS
    # rebinding, or an allowlist since narrowed): refused at send time, nothing reaches it
    contact_id = await subscribe(
        app, channels=["webhook"], kinds=["delivery.created"], webhook_url="https://hooks.example/x"
    )
    await app.db["contacts"].update_one(
        {"_id": contact_id}, {"$set": {"webhook_url": receiver.url}}
    )
    await publish(app, delivery())
    [job] = await eventually(
        lambda: jobs(app, "webhook"), until=lambda rows: bool(rows) and rows[0]["state"] == "dead"
    )
    assert job["attempts"] == 1  # retrying cannot help
    assert "127.0.0.1 is a loopback address: webhooks may not call it" in job["last_error"]
    assert receiver.requests == []


async def test_a_channel_that_cannot_work_dead_letters_at_once(start_service: StartService) -> None:
    app = await start(start_service)  # no SMTP server configured
    await subscribe(app, channels=["email"], kinds=["delivery.created"])

    await publish(app, delivery())
    [job] = await eventually(
        lambda: jobs(app, "email"), until=lambda rows: bool(rows) and rows[0]["state"] == "dead"
    )

    assert job["attempts"] == 1
    assert job["last_error"] == "e-mail is not configured (LIENTHONG_SMTP_HOST is empty)"


async def test_a_stuck_gateway_holds_up_neither_email_nor_in_app(
    start_service: StartService, smtp_server: Any, http_server: HttpServers
) -> None:
    gateway = await http_server()
    gateway.behaviour = "hold"
    app = await start(
        start_service,
        env={
            "LIENTHONG_SMTP_HOST": "127.0.0.1",
            "LIENTHONG_SMTP_PORT": str(smtp_server.port),
            "LIENTHONG_SMS_URL": gateway.url,
        },
    )
    await subscribe(app, channels=["email", "sms"], kinds=["delivery.created"])

    for index in range(3):
        await publish(app, delivery(f"dl-{index}", number=str(20 + index)))
    await wait_until(lambda: len(smtp_server.messages) == 3)

    # the SMS reached the gateway and are still waiting on it (none answered yet)
    await wait_until(lambda: len(gateway.requests) >= 1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        reply = await eventually(
            lambda: NotificationServiceStub(channel).ListNotifications(
                pb.ListNotificationsRequest(), metadata=as_unit()
            ),
            until=lambda r: len(r.notifications) == 3,
        )
    assert {n.channel for n in reply.notifications} == {"in_app"}
    gateway.release.set()
    await wait_until(lambda: len(gateway.accepted) == 3)


async def test_routine_sms_waits_for_the_end_of_quiet_hours_but_urgent_goes_at_once(
    start_service: StartService, http_server: HttpServers
) -> None:
    from datetime import UTC, datetime

    from notification_service.timing import ManualClock

    clock = ManualClock(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))  # 23:00 in Việt Nam
    gateway = await http_server()
    app = await start(
        start_service,
        clock,
        env={"LIENTHONG_SMS_URL": gateway.url, "LIENTHONG_QUIET_HOURS": "21:00-07:00"},
    )
    await subscribe(app, channels=["sms"], kinds=["delivery.created"])

    await publish(app, delivery("dl-routine", priority=0, number="30"))
    await publish(app, delivery("dl-urgent", priority=1, number="31"))
    await wait_until(lambda: len(gateway.accepted) == 1)
    assert "(Khẩn): số 31/" in json.loads(gateway.accepted[0])["message"]
    rows = await eventually(  # the gateway answered; the worker then marks the job sent
        lambda: jobs(app, "sms"),
        until=lambda found: sorted(r["state"] for r in found) == ["pending", "sent"],
    )
    [held] = [row for row in rows if row["state"] == "pending"]
    assert held["not_before"] == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 07:00 in Việt Nam

    clock.set(datetime(2026, 11, 24, 0, 0, 1, tzinfo=UTC))
    await wait_until(lambda: len(gateway.accepted) == 2)
    assert "(Thường): số 30/" in json.loads(gateway.accepted[1])["message"]


async def test_contacts_are_validated_and_kept_to_their_unit(start_service: StartService) -> None:
    app = await start(start_service)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.PutContact(
                pb.PutContactRequest(
                    contact=pb.Contact(
                        name="Trần Văn B",
                        role="clerk",
                        email="b@",
                        phone="0123",
                        webhook_url="javascript:alert(1)",
                        webhook_secret="x" * 20,
                        group_codes=["khong-co"],
                    )
                ),
                metadata=as_unit(),
            )
        created = await stub.PutContact(
            pb.PutContactRequest(
                contact=pb.Contact(
                    name="Trần Văn B",
                    role="leader",
                    phone="+84 987 654 321",
                    webhook_url="https://eoffice.example/hook",
                    webhook_secret="y" * 20,
                )
            ),
            metadata=as_unit(),
        )
        with pytest.raises(grpc.aio.AioRpcError) as foreign:
            await stub.GetContact(
                pb.GetContactRequest(contact_id=created.contact.contact_id),
                metadata=as_unit(SENDER),
            )
        with pytest.raises(grpc.aio.AioRpcError) as foreign_subscribe:
            await stub.Subscribe(
                pb.SubscribeRequest(
                    subscription=pb.Subscription(
                        contact_id=created.contact.contact_id,
                        event_kinds=["delivery.created"],
                        channels=["sms"],
                    )
                ),
                metadata=as_unit(SENDER),
            )
        renamed = await stub.PutContact(  # the stored secret is kept when none is sent
            pb.PutContactRequest(
                contact=pb.Contact(
                    contact_id=created.contact.contact_id,
                    name="Trần Văn Bình",
                    role="leader",
                    phone="0987654321",
                    webhook_url="https://eoffice.example/hook",
                )
            ),
            metadata=as_unit(),
        )
        listed = await stub.ListContacts(pb.ListContactsRequest(), metadata=as_unit())

    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = bad.value.details() or ""
    for field_name in (
        "contact.email",
        "contact.phone",
        "contact.webhook_url",
        "contact.group_codes[0]",
    ):
        assert field_name in details
    assert created.contact.phone == "+84987654321"
    assert created.contact.has_webhook_secret
    assert not created.contact.webhook_secret
    assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert foreign_subscribe.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert renamed.contact.has_webhook_secret
    assert [c.name for c in listed.contacts] == ["Trần Văn Bình"]


async def test_watch_streams_new_notices_and_mark_read_marks_them(
    start_service: StartService,
) -> None:
    app = await start(start_service)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        stream = stub.WatchNotifications(pb.WatchNotificationsRequest(), metadata=as_unit())
        received: list[pb.WatchNotificationsResponse] = []

        async def read() -> None:
            async for reply in stream:
                received.append(reply)

        reader = asyncio.create_task(read())
        # the replica's tail reads from the end and starts asynchronously: publish until the
        # stream has seen one
        for attempt in range(30):
            await publish(app, delivery(f"dl-watch-{attempt}", number=str(40 + attempt)))
            try:
                await wait_until(lambda: bool(received), timeout=2.0)
                break
            except TimeoutError:
                continue
        stream.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        first = received[0]
        assert first.notification.title.startswith("Văn bản đến mới (Hỏa tốc)")
        assert first.notification.unit_code == RECIPIENT

        marked = await stub.MarkRead(
            pb.MarkReadRequest(notification_ids=[first.notification.notification_id]),
            metadata=as_unit(),
        )
        again = await stub.MarkRead(
            pb.MarkReadRequest(notification_ids=[first.notification.notification_id]),
            metadata=as_unit(),
        )
        foreign = await stub.MarkRead(
            pb.MarkReadRequest(notification_ids=[first.notification.notification_id]),
            metadata=as_unit(SENDER),
        )
        unread = await stub.ListNotifications(
            pb.ListNotificationsRequest(unread_only=True), metadata=as_unit()
        )
        with pytest.raises(grpc.aio.AioRpcError) as forged:  # a token this API never issued
            await stub.ListNotifications(
                pb.ListNotificationsRequest(page_token=encode_token(["x", "y"])),
                metadata=as_unit(),
            )
    assert forged.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in str(forged.value.details())
    assert (marked.marked, again.marked, foreign.marked) == (1, 0, 0)
    assert first.notification.notification_id not in {
        n.notification_id for n in unread.notifications
    }


BAD_PAGE_TOKENS = {
    "not base64": "@@not-base64@@",
    "base64 of non-JSON": base64.urlsafe_b64encode(b"not json").decode(),
    "one part": encode_token("2026-11-23T16:00:00+00:00"),
    "three parts": encode_token("2026-11-23T16:00:00+00:00", "n-1", "extra"),
    "a bad timestamp": encode_token("yesterday", "n-1"),
}


async def test_list_notifications_refuses_a_page_token_it_did_not_issue(
    start_service: StartService,
) -> None:
    app = await start(start_service)
    refused: dict[str, tuple[grpc.StatusCode, list[str]]] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        for case, token in BAD_PAGE_TOKENS.items():
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListNotifications(
                    pb.ListNotificationsRequest(page_token=token), metadata=as_unit()
                )
            status = rpc_status.from_call(info.value)
            bad_request = error_details_pb2.BadRequest()
            assert status is not None
            assert status.details[0].Unpack(bad_request)
            refused[case] = (
                info.value.code(),
                [violation.field for violation in bad_request.field_violations],
            )
    assert refused == {
        case: (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"]) for case in BAD_PAGE_TOKENS
    }


async def test_a_group_is_deleted_only_when_empty(start_service: StartService) -> None:
    app = await start(start_service)
    contact_id = await subscribe(app, channels=["email"], kinds=["delivery.created"])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await stub.DeleteGroup(pb.DeleteGroupRequest(code="van-thu"), metadata=as_unit())
        members = await stub.ListContacts(
            pb.ListContactsRequest(group_code="van-thu"), metadata=as_unit()
        )
        await stub.DeleteContact(pb.DeleteContactRequest(contact_id=contact_id), metadata=as_unit())
        await stub.DeleteGroup(pb.DeleteGroupRequest(code="van-thu"), metadata=as_unit())
        groups = await stub.ListGroups(pb.ListGroupsRequest(), metadata=as_unit())
        subscriptions = await stub.ListSubscriptions(
            pb.ListSubscriptionsRequest(), metadata=as_unit()
        )

    assert busy.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [c.contact_id for c in members.contacts] == [contact_id]
    assert list(groups.groups) == []
    assert list(subscriptions.subscriptions) == []


async def test_an_event_naming_no_unit_is_dead_lettered_with_the_reason(
    start_service: StartService, topic_reader: Any
) -> None:
    app = await start(start_service)
    nobody = delivery("dl-nobody")
    nobody.recipient_code = ""

    await app.producer.publish(
        app.topics.deliveries, key="x", envelope=new_event(nobody, producer="test")
    )
    [record] = await topic_reader(app.topics.dlq(app.topics.deliveries), 1)

    reason = dict(record.headers)["lienthong-dlq-reason"].decode()
    assert reason == "delivery.created names no unit to tell (delivery.created)"


async def test_a_notice_the_store_cannot_hold_is_dead_lettered_and_the_rest_are_recorded(
    start_service: StartService, topic_reader: Any
) -> None:
    # a poll's notices are written together before the commit: one that can never be written
    # must be refused per record, or the retried write would stop every notice after it
    app = await start(start_service)
    nul = delivery("dl-nul")
    nul.document.subject = "Về việc\x00 bão"
    await publish(app, delivery("dl-before", number="1"))
    await publish(app, nul)
    await publish(app, delivery("dl-after", number="2"))

    [record] = await topic_reader(app.topics.dlq(app.topics.deliveries), 1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        reply = await eventually(
            lambda: NotificationServiceStub(channel).ListNotifications(
                pb.ListNotificationsRequest(), metadata=as_unit()
            ),
            until=lambda r: len(r.notifications) == 2,
        )

    assert dict(record.headers)["lienthong-dlq-reason"].decode() == (
        "delivery.created: a NUL character in a notice"
    )
    assert sorted(n.document_id for n in reply.notifications) == ["doc-dl-after", "doc-dl-before"]
