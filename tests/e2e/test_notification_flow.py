"""A document's life told by e-mail: the five services as processes, an SMTP server on
loopback. The recipient's clerk hears of the new document, the sender's clerk of its receipt."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiosmtpd.controller import Controller

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong_local.platform import Platform
from lienthong_local.run import load_sample_registry
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.ports import free_port
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

SENDER = "000.00.00.H23"
DEPARTMENT = "000.01.00.H23"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    port = free_port()
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture(scope="module")
def platform(
    infra: None, mailbox: tuple[Mailbox, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    prefix = f"e2enote{uuid.uuid4().hex[:8]}_"
    extra = {
        "LIENTHONG_SMTP_HOST": "127.0.0.1",
        "LIENTHONG_SMTP_PORT": str(mailbox[1]),
        "LIENTHONG_QUIET_HOURS": "",
        "LIENTHONG_NOTIFY_POLL_SECONDS": "0.2",
    }
    log_dir = tmp_path_factory.mktemp("notification-flow-logs")
    with Platform.start(log_dir=Path(log_dir), prefix=prefix, extra_env=extra) as running:
        load_sample_registry(running.endpoint("routing-service"))
        yield running
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def as_unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


def subscribe(platform: Platform, unit: str, address: str, kinds: list[str]) -> None:
    with grpc.insecure_channel(platform.endpoint("notification-service")) as channel:
        stub = NotificationServiceStub(channel)
        contact = stub.PutContact(
            pb.PutContactRequest(
                contact=pb.Contact(name="Phạm Thị Lan", role="clerk", email=address)
            ),
            metadata=as_unit(unit),
            timeout=10,
        )
        stub.Subscribe(
            pb.SubscribeRequest(
                subscription=pb.Subscription(
                    contact_id=contact.contact.contact_id, event_kinds=kinds, channels=["email"]
                )
            ),
            metadata=as_unit(unit),
            timeout=10,
        )


def test_the_recipient_hears_of_the_document_and_the_sender_of_its_receipt(
    platform: Platform, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    subscribe(platform, DEPARTMENT, "vanthu@sotc.hoabinh.gov.vn", ["delivery.created"])
    subscribe(platform, SENDER, "vanthu@ubnd.hoabinh.gov.vn", ["delivery.status.changed"])
    request = doc_pb.SubmitDocumentRequest(
        idempotency_key="e2e-notify-1",
        recipients={"unit_codes": [DEPARTMENT]},
        code={"number": "201", "notation": "KH-UBND"},
        document_type="KH",
        subject="Kế hoạch chuyển đổi số năm 2027",
        priority=2,
        promulgation_date="2026-11-20",
    )
    request.due_at.FromDatetime(datetime.now(UTC) + timedelta(days=10))
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        documents = DocumentServiceStub(channel)
        documents.SubmitDocument(request, metadata=as_unit(SENDER), timeout=10)
        eventually_sync(
            lambda: [str(m["Subject"]) for m in box.messages],
            until=lambda subjects: "Văn bản đến mới (Thượng khẩn): số 201/KH-UBND" in subjects,
            timeout=60,
        )
        inbox = documents.ListInbox(doc_pb.ListInboxRequest(), metadata=as_unit(DEPARTMENT))
        [entry] = [e for e in inbox.entries if e.document.code.number == "201"]
        documents.AcknowledgeDelivery(
            doc_pb.AcknowledgeDeliveryRequest(
                delivery_id=entry.delivery_id, status_code="03", staff="Phạm Thị Lan"
            ),
            metadata=as_unit(DEPARTMENT),
            timeout=10,
        )
    receipt = eventually_sync(
        lambda: {
            str(m["Subject"]): m for m in box.messages if m["To"] == "vanthu@ubnd.hoabinh.gov.vn"
        },
        until=lambda found: len(found) == 2,
        timeout=60,
    )

    # the arrival (01, reported by document-service itself) and the clerk's registration (03)
    assert sorted(receipt) == [
        "Văn bản số 201/KH-UBND: 000.01.00.H23 đã tiếp nhận",
        "Văn bản số 201/KH-UBND: 000.01.00.H23 đã đến",
    ]
    registered = receipt["Văn bản số 201/KH-UBND: 000.01.00.H23 đã tiếp nhận"]
    assert "Kế hoạch chuyển đổi số năm 2027" in registered.get_content()
    new = [m for m in box.messages if m["To"] == "vanthu@sotc.hoabinh.gov.vn"]
    assert len(new) == 1
