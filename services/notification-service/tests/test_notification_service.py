"""notification-service: the in-app notice for a delivery, once per event."""

from __future__ import annotations

from typing import Any

import grpc

from lienthong.common.v1.common_pb2 import DocumentCode, DocumentSummary
from lienthong.events.v1.events_pb2 import DeliveryCreated
from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong_kit.envelope import new_event
from lienthong_kit.server import ServiceApp
from lienthong_testing.waiting import eventually
from notification_service.__main__ import build
from notification_service.messages import render_new_delivery
from notification_service.settings import Settings

RECIPIENT = "000.01.00.H23"


def delivery(priority: int = 3) -> DeliveryCreated:
    return DeliveryCreated(
        delivery_id="dl-1",
        recipient_code=RECIPIENT,
        document=DocumentSummary(
            document_id="doc-1",
            sender_code="000.00.00.H23",
            code=DocumentCode(number="15", notation="CĐ-UBND"),
            subject="Về việc ứng phó bão số 3",
            priority=priority,
        ),
    )


def test_the_notice_is_in_vietnamese_with_the_urgency() -> None:
    title, body = render_new_delivery(delivery())
    assert title == "Văn bản đến mới (Hỏa tốc): số 15/CĐ-UBND"
    assert body == "Từ 000.00.00.H23: Về việc ứng phó bão số 3"


async def test_one_notification_per_event_however_often_it_arrives(start_service: Any) -> None:
    service: ServiceApp = await start_service("notification-service", build, Settings)
    envelope = new_event(delivery(), producer="routing-service")
    for _ in range(3):
        await service.producer.publish(service.topics.deliveries, key=RECIPIENT, envelope=envelope)
    second = new_event(delivery(priority=0), producer="routing-service")
    await service.producer.publish(service.topics.deliveries, key=RECIPIENT, envelope=second)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        reply = await eventually(
            lambda: stub.ListNotifications(
                pb.ListNotificationsRequest(), metadata=(("x-lienthong-unit", RECIPIENT),)
            ),
            until=lambda r: len(r.notifications) >= 2,
        )
    titles = sorted(n.title for n in reply.notifications)
    assert titles == [
        "Văn bản đến mới (Hỏa tốc): số 15/CĐ-UBND",
        "Văn bản đến mới (Thường): số 15/CĐ-UBND",
    ]
