"""notification-service's pure domain: validation, quiet hours, templates, settings."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from lienthong.common.v1.common_pb2 import DocumentCode, DocumentSummary, Forwarded, Verdict
from lienthong.events.v1.events_pb2 import (
    DeliveryBounced,
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentVerified,
)
from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import InvalidArgument, PoisonEvent, Violations
from lienthong_kit.settings import SettingsError, load_settings
from notification_service.consumers import EventHandler
from notification_service.messages import notices_for
from notification_service.settings import Settings, parse_quiet_hours
from notification_service.timing import TokenBucket, backoff, hold_until
from notification_service.validation import (
    check_contact,
    check_subscription,
    normalise_phone,
    valid_email,
)

SENDER = "000.00.00.H23"
RECIPIENT = "000.01.00.H23"
QUIET = (time(21, 0), time(7, 0))


def summary(priority: int = 0) -> DocumentSummary:
    return DocumentSummary(
        document_id="doc-1",
        sender_code=SENDER,
        code=DocumentCode(number="15", notation="QĐ-UBND"),
        subject="Về việc triển khai liên thông văn bản",
        priority=priority,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("0912345678", "+84912345678", id="viettel-09"),
        pytest.param("0387 654 321", "+84387654321", id="spaces-03"),
        pytest.param("+84 58-123-4567", "+84581234567", id="plus84-05"),
        pytest.param("84701234567", "+84701234567", id="84-07"),
        pytest.param("0812.345.678", "+84812345678", id="dots-08"),
        pytest.param("0212345678", None, id="landline-02"),
        pytest.param("091234567", None, id="nine-digits"),
        pytest.param("09123456789", None, id="eleven-digits"),
        pytest.param("+8491234567", None, id="plus84-short"),
        pytest.param("0612345678", None, id="06-not-mobile"),
        pytest.param("phone", None, id="letters"),
    ],
)
def test_vietnamese_mobile_numbers_are_normalised(raw: str, expected: str | None) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        pytest.param("vanthu@sonoivu.hoabinh.gov.vn", True, id="gov-vn"),
        pytest.param("nguyen.van.a+so@example.com", True, id="plus"),
        pytest.param("vanthu@", False, id="no-domain"),
        pytest.param("@hoabinh.gov.vn", False, id="no-local"),
        pytest.param("văn.thư@hoabinh.gov.vn", False, id="diacritics"),
        pytest.param("a..b@hoabinh.gov.vn", False, id="double-dot"),
        pytest.param("a@b", False, id="no-tld"),
        pytest.param("a b@hoabinh.gov.vn", False, id="space"),
    ],
)
def test_email_syntax(address: str, ok: bool) -> None:
    assert valid_email(address) is ok


def test_every_contact_violation_is_reported_at_once() -> None:
    contact = pb.Contact(
        name=" ",
        role="boss",
        email="not-an-address",
        phone="0212345678",
        webhook_url="ftp://agency.example/hook",
        webhook_secret="short",
    )
    violations = Violations()
    check_contact(contact, violations)
    with pytest.raises(InvalidArgument) as info:
        violations.raise_if_any()
    fields = [v.field for v in info.value.violations]
    assert fields == [
        "contact.name",
        "contact.role",
        "contact.email",
        "contact.phone",
        "contact.webhook_secret",
        "contact.webhook_url",
    ]


def test_a_valid_contact_passes_with_its_phone_normalised() -> None:
    contact = pb.Contact(
        name="Nguyễn Thị Hoa",
        role="clerk",
        email="hoa@sotc.hoabinh.gov.vn",
        phone="0912 345 678",
        webhook_url="https://eoffice.hoabinh.gov.vn/hooks/lienthong",
        webhook_secret="a-secret-of-enough-length",
    )
    violations = Violations()
    assert check_contact(contact, violations) == "+84912345678"
    assert violations.items == []


@pytest.mark.parametrize(
    ("utc", "held_until"),
    [
        pytest.param(datetime(2026, 11, 23, 3, 0, tzinfo=UTC), None, id="10h-vn-free"),
        pytest.param(
            datetime(2026, 11, 23, 15, 30, tzinfo=UTC),
            datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
            id="22h30-vn-held-to-7h-next-day",
        ),
        pytest.param(
            datetime(2026, 11, 23, 20, 0, tzinfo=UTC),
            datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
            id="3h-vn-held-to-7h-same-day",
        ),
        pytest.param(datetime(2026, 11, 24, 0, 0, tzinfo=UTC), None, id="7h-vn-exactly-free"),
        pytest.param(
            datetime(2026, 11, 23, 14, 0, tzinfo=UTC),
            datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
            id="21h-vn-exactly-held",
        ),
    ],
)
def test_quiet_hours_are_vietnam_time(utc: datetime, held_until: datetime | None) -> None:
    assert hold_until(utc, QUIET) == (held_until or utc)


def test_a_daytime_quiet_window_does_not_wrap() -> None:
    lunch = (time(11, 30), time(13, 0))
    at_noon_vn = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert hold_until(at_noon_vn, lunch) == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert hold_until(at_noon_vn, None) == at_noon_vn


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    for attempt, low, high in [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (10, 5.0, 10.0)]:
        delays = [backoff(attempt, first=1.0, maximum=10.0) for _ in range(50)]
        assert all(low <= d <= high for d in delays)
        assert len(set(delays)) > 1


def test_a_new_delivery_names_its_urgency_in_vietnamese() -> None:
    envelope = new_event(
        DeliveryCreated(delivery_id="dl-1", recipient_code=RECIPIENT, document=summary(2)),
        producer="routing-service",
    )
    [notice] = notices_for(envelope)
    assert notice.kind == "delivery.created"
    assert notice.unit_code == RECIPIENT
    assert notice.urgent
    assert notice.title == "Văn bản đến mới (Thượng khẩn): số 15/QĐ-UBND"


@pytest.mark.parametrize(
    ("event", "kind", "unit", "title"),
    [
        pytest.param(
            DeliveryBounced(
                delivery_id="dl-2",
                recipient_code="999.99.99.H99",
                document=summary(),
                reason="mã định danh không tồn tại",
            ),
            "document.returned",
            SENDER,
            "Văn bản số 15/QĐ-UBND bị trả lại (Thường)",
            id="bounced",
        ),
        pytest.param(
            DeliveryStatusChanged(
                delivery_id="dl-3",
                recipient_code=RECIPIENT,
                document=summary(),
                status_code="03",
                reported_code="03",
            ),
            "delivery.status.changed",
            SENDER,
            "Văn bản số 15/QĐ-UBND: 000.01.00.H23 đã tiếp nhận",
            id="accepted",
        ),
        pytest.param(
            DeliveryStatusChanged(
                delivery_id="dl-4",
                recipient_code=RECIPIENT,
                document=summary(),
                status_code="02",
                reported_code="02",
                description="Gửi nhầm đơn vị",
            ),
            "document.returned",
            SENDER,
            "Văn bản số 15/QĐ-UBND bị trả lại (Thường)",
            id="refused",
        ),
        pytest.param(
            DeliveryStatusChanged(
                delivery_id="dl-5",
                recipient_code=RECIPIENT,
                document=summary(1),
                status_code="03",
                recall_status="13",
                reported_code="13",
            ),
            "document.recalled",
            RECIPIENT,
            "Thu hồi văn bản số 15/QĐ-UBND (Khẩn)",
            id="recall",
        ),
        pytest.param(
            DeliveryStatusChanged(
                delivery_id="dl-6",
                recipient_code=RECIPIENT,
                document=summary(),
                status_code="05",
                reported_code="99",
            ),
            "delivery.status.changed",
            SENDER,
            "Văn bản số 15/QĐ-UBND: 000.01.00.H23 99",
            id="a-code-outside-edxml-as-it-came",
        ),
        pytest.param(
            DeliveryBounced(delivery_id="dl-7", recipient_code=RECIPIENT, document=summary(9)),
            "document.returned",
            SENDER,
            "Văn bản số 15/QĐ-UBND bị trả lại (Thường)",
            id="a-priority-outside-0-4-reads-routine",
        ),
        pytest.param(
            DocumentVerified(
                document=summary(),
                verdict=Verdict.VERDICT_REJECTED,
                reason="thiếu chữ ký số của cơ quan",
            ),
            "document.returned",
            SENDER,
            "Văn bản số 15/QĐ-UBND bị trả lại (Thường)",
            id="rejected-signature",
        ),
    ],
)
def test_who_is_told_what(event: object, kind: str, unit: str, title: str) -> None:
    [notice] = notices_for(new_event(event, producer="test"))  # type: ignore[arg-type]
    assert (notice.kind, notice.unit_code, notice.title) == (kind, unit, title)


def test_a_forwarded_delivery_tells_the_sender_where_it_went() -> None:
    created = DeliveryCreated(
        delivery_id="dl-8",
        recipient_code=RECIPIENT,
        document=summary(),
        forwarded_from=[Forwarded(closed_code="000.01.31.H60", reason="closed; forwarded")],
    )
    recipient, sender = notices_for(new_event(created, producer="routing-service"))
    assert (recipient.kind, recipient.unit_code) == ("delivery.created", RECIPIENT)
    assert (sender.kind, sender.unit_code) == ("document.forwarded", SENDER)
    assert sender.title == "Văn bản số 15/QĐ-UBND được chuyển tới đơn vị kế thừa"
    assert "000.01.31.H60" in sender.body
    assert RECIPIENT in sender.body
    assert sender.facts["closed"] == "000.01.31.H60"


def test_an_accepted_document_tells_nobody() -> None:
    accepted = DocumentVerified(document=summary(), verdict=Verdict.VERDICT_ACCEPTED)
    assert notices_for(new_event(accepted, producer="signature-service")) == []


def test_bad_settings_are_reported_together() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            Settings,
            {
                "LIENTHONG_QUIET_HOURS": "late",
                "LIENTHONG_SMS_BODY_TEMPLATE": '{"to": $phone}',
                "LIENTHONG_SMS_URL": "gateway.local",
                "LIENTHONG_REMINDER_LEAD_DAYS": "3,0",
            },
        )
    text = str(info.value)
    for name in (
        "LIENTHONG_QUIET_HOURS",
        "LIENTHONG_SMS_BODY_TEMPLATE",
        "LIENTHONG_SMS_URL",
        "LIENTHONG_REMINDER_LEAD_DAYS",
    ):
        assert name in text
    assert parse_quiet_hours("22:30-06:00") == (time(22, 30), time(6, 0))


async def test_the_token_bucket_spaces_sends_at_its_rate() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    bucket = TokenBucket(rate=4.0, burst=2.0, monotonic=lambda: now[0], sleep=sleep)

    for _ in range(4):
        await bucket.take()
    now[0] += 10.0  # idle: the bucket refills to its burst, not beyond
    for _ in range(3):
        await bucket.take()

    assert slept == [0.25, 0.25, 0.25]


def test_oversized_contact_and_subscription_fields_are_named_once_each() -> None:
    contact = pb.Contact(
        contact_id="c" * 65,
        name="Nguyễn Văn A",
        role="clerk",
        webhook_url="https://agency.example/" + "x" * 3000,
        webhook_secret="s" * 257,
        group_codes=["g"] * 10_000,
    )
    violations = Violations()
    check_contact(contact, violations)
    assert [v.field for v in violations.items] == [
        "contact.contact_id",
        "contact.webhook_secret",
        "contact.webhook_url",
        "contact.group_codes",
    ]
    subscription = pb.Subscription(
        contact_id="c" * 65,
        event_kinds=["delivery.created"] * 10_000,
        channels=["email"] * 10_000,
    )
    violations = Violations()
    check_subscription(subscription, violations)
    assert [v.field for v in violations.items] == [
        "subscription.contact_id",
        "subscription.event_kinds",
        "subscription.channels",
    ]


async def test_a_time_outside_the_calendar_is_poison_not_a_retry() -> None:
    document = DocumentSummary(document_id="doc-far", sender_code="000.00.00.H23")
    document.due_at.seconds = 2**62  # as the topic fuzzer sends it
    created = DeliveryCreated(
        delivery_id="dl-far", recipient_code="000.01.00.H23", document=document
    )
    # refused before anything is recorded: the handler's collaborators are never reached
    handler = EventHandler(notifier=None, reminders=None)  # type: ignore[arg-type]
    with pytest.raises(PoisonEvent, match="out of range"):
        await handler.on_event(new_event(created, producer="fuzzer"), None)  # type: ignore[arg-type]
