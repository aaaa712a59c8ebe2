"""notification-service's domain for now: an in-app notification for every new delivery.

E-mail, SMS, webhooks, subscriptions and reminders come in their own issue; they hang off the
same consumer.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from grpc import aio
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from lienthong.events.v1.events_pb2 import DeliveryCreated
from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceServicer
from lienthong_kit.context import caller_unit
from lienthong_kit.envelope import EventEnvelope, carries, derived_event_id, unpack
from lienthong_kit.mongo import AsyncDatabase, Doc, ensure_indexes
from lienthong_kit.paging import decode_token, encode_token, page_size

__all__ = ["URGENCY", "NotificationServicer", "Notifier", "render_new_delivery"]

URGENCY = {0: "Thường", 1: "Khẩn", 2: "Thượng khẩn", 3: "Hỏa tốc", 4: "Hỏa tốc hẹn giờ"}


def render_new_delivery(delivery: DeliveryCreated) -> tuple[str, str]:
    """Title and body of the in-app notice, in Vietnamese."""
    document = delivery.document
    urgency = URGENCY.get(document.priority, "Thường")
    title = f"Văn bản đến mới ({urgency}): số {document.code.number}/{document.code.notation}"
    body = f"Từ {document.sender_code}: {document.subject}"
    return title, body


class Notifier:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.notifications = db["notifications"]

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self.notifications, [IndexModel([("unit_code", ASCENDING), ("created_at", DESCENDING)])]
        )

    async def on_delivery(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if not carries(envelope, DeliveryCreated):
            return
        delivery = unpack(envelope, DeliveryCreated)
        title, body = render_new_delivery(delivery)
        # One notification per (event, contact, channel): a redelivered event hits the key.
        with contextlib.suppress(DuplicateKeyError):
            await self.notifications.insert_one(
                {
                    "_id": derived_event_id(envelope.event_id, "in_app", delivery.recipient_code),
                    "unit_code": delivery.recipient_code,
                    "channel": "in_app",
                    "title": title,
                    "body": body,
                    "document_id": delivery.document.document_id,
                    "created_at": datetime.now(UTC),
                    "read": False,
                }
            )


class NotificationServicer(NotificationServiceServicer):
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListNotificationsResponse:
        unit = caller_unit()
        size = page_size(request.page_size, default=50, maximum=200)
        token = decode_token(request.page_token)
        query: Doc = {"unit_code": unit}
        if len(token) == 2:
            at = datetime.fromisoformat(token[0])
            query["$or"] = [
                {"created_at": {"$lt": at}},
                {"created_at": at, "_id": {"$lt": token[1]}},
            ]
        cursor = (
            self._notifier.notifications.find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(size + 1)
        )
        rows = [row async for row in cursor]
        response = pb.ListNotificationsResponse()
        for row in rows[:size]:
            item = response.notifications.add(
                notification_id=row["_id"],
                unit_code=row["unit_code"],
                channel=row["channel"],
                title=row["title"],
                body=row["body"],
                document_id=row["document_id"],
                read=row["read"],
            )
            item.created_at.FromDatetime(row["created_at"])
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_token(last["created_at"].isoformat(), last["_id"])
        return response
