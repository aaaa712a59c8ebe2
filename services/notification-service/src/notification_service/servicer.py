"""The NotificationService RPCs: in-app notifications, contacts, groups, subscriptions and
the failed notifications. Every call acts on the caller's unit only (``caller_unit()``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from grpc import aio
from pymongo import DESCENDING

from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceServicer
from lienthong_kit.context import caller_unit
from lienthong_kit.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Violations,
)
from lienthong_kit.mongo import Doc
from lienthong_kit.paging import decode_token, encode_token, page_size
from notification_service.notifier import Notifier
from notification_service.settings import CHANNELS
from notification_service.validation import check_contact, check_group, check_subscription
from notification_service.watch import NotificationHub

__all__ = ["NotificationServicer"]

Context = aio.ServicerContext[Any, Any]

MARK_READ_LIMIT = 500


def _notification(row: Doc) -> pb.Notification:
    item = pb.Notification(
        notification_id=row["_id"],
        unit_code=row["unit_code"],
        channel=row["channel"],
        title=row["title"],
        body=row["body"],
        document_id=row["document_id"],
        read=row["read"],
        kind=row.get("kind", "delivery.created"),
        urgent=row.get("urgent", False),
    )
    item.created_at.FromDatetime(row["created_at"])
    return item


def _contact(row: Doc) -> pb.Contact:
    return pb.Contact(
        contact_id=row["_id"],
        unit_code=row["unit_code"],
        name=row["name"],
        role=row["role"],
        email=row.get("email", ""),
        phone=row.get("phone", ""),
        webhook_url=row.get("webhook_url", ""),
        has_webhook_secret=bool(row.get("webhook_secret")),
        group_codes=row.get("group_codes", []),
    )


def _subscription(row: Doc) -> pb.Subscription:
    return pb.Subscription(
        subscription_id=row["target"],
        unit_code=row["unit_code"],
        contact_id=row.get("contact_id", ""),
        group_code=row.get("group_code", ""),
        event_kinds=row["event_kinds"],
        channels=row["channels"],
    )


class NotificationServicer(NotificationServiceServicer):
    def __init__(self, notifier: Notifier, hub: NotificationHub) -> None:
        self._n = notifier
        self._hub = hub

    # --- in-app ---------------------------------------------------------------------------

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Context
    ) -> pb.ListNotificationsResponse:
        unit = caller_unit()
        size = page_size(request.page_size, default=50, maximum=200)
        token = decode_token(request.page_token)
        query: Doc = {"unit_code": unit}
        if request.unread_only:
            query["read"] = False
        if token:
            try:
                at, last_id = datetime.fromisoformat(token[0]), token[1]
                if len(token) != 2:
                    raise ValueError(token)
            except (ValueError, IndexError) as exc:
                raise InvalidArgument(
                    [FieldViolation("page_token", "is not a token this API issued")]
                ) from exc
            query["$or"] = [
                {"created_at": {"$lt": at}},
                {"created_at": at, "_id": {"$lt": last_id}},
            ]
        cursor = (
            self._n.notifications.find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(size + 1)
        )
        rows = [row async for row in cursor]
        response = pb.ListNotificationsResponse(
            notifications=[_notification(row) for row in rows[:size]]
        )
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_token(last["created_at"].isoformat(), last["_id"])
        return response

    async def WatchNotifications(
        self, request: pb.WatchNotificationsRequest, context: Context
    ) -> AsyncIterator[pb.WatchNotificationsResponse]:
        unit = caller_unit()
        with self._hub.watch(unit) as rows:
            async for row in rows:
                yield pb.WatchNotificationsResponse(notification=_notification(row))

    async def MarkRead(self, request: pb.MarkReadRequest, context: Context) -> pb.MarkReadResponse:
        unit = caller_unit()
        violations = Violations()
        violations.require(
            0 < len(request.notification_ids) <= MARK_READ_LIMIT,
            "notification_ids",
            f"between 1 and {MARK_READ_LIMIT} ids",
        )
        violations.raise_if_any()
        marked = await self._n.mark_read(unit, list(request.notification_ids))
        return pb.MarkReadResponse(marked=marked)

    # --- contacts and groups ----------------------------------------------------------------

    async def _own(self, collection: str, key: str, unit: str, what: str) -> Doc:
        row = await self._n.notifications.database[collection].find_one({"_id": key})
        if row is None:
            raise NotFound(f"no {what} {key}")
        if row["unit_code"] != unit:
            raise PermissionDenied(f"{what} {key} belongs to another unit")
        return row

    async def PutContact(
        self, request: pb.PutContactRequest, context: Context
    ) -> pb.PutContactResponse:
        unit = caller_unit()
        contact = request.contact
        if contact.unit_code and contact.unit_code != unit:
            raise PermissionDenied(f"{unit} may only manage its own contacts")
        stored: Doc | None = None
        if contact.contact_id:
            stored = await self._own("contacts", contact.contact_id, unit, "contact")
        violations = Violations()
        phone = check_contact(
            contact,
            violations,
            has_stored_secret=bool(stored and stored.get("webhook_secret")),
        )
        groups = {row["code"] async for row in self._n.groups.find({"unit_code": unit})}
        for index, code in enumerate(contact.group_codes):
            if code and code not in groups:
                violations.add(f"contact.group_codes[{index}]", f"no group {code!r} in {unit}")
        violations.raise_if_any()
        secret = contact.webhook_secret or (stored or {}).get("webhook_secret", "")
        row: Doc = {
            "_id": contact.contact_id or str(uuid.uuid4()),
            "unit_code": unit,
            "name": contact.name.strip(),
            "role": contact.role,
            "email": contact.email,
            "phone": phone,
            "webhook_url": contact.webhook_url,
            "webhook_secret": secret if contact.webhook_url else "",
            "group_codes": list(dict.fromkeys(contact.group_codes)),
            "updated_at": datetime.now(UTC),
        }
        await self._n.contacts.replace_one({"_id": row["_id"]}, row, upsert=True)
        return pb.PutContactResponse(contact=_contact(row))

    async def GetContact(
        self, request: pb.GetContactRequest, context: Context
    ) -> pb.GetContactResponse:
        row = await self._own("contacts", request.contact_id, caller_unit(), "contact")
        return pb.GetContactResponse(contact=_contact(row))

    async def ListContacts(
        self, request: pb.ListContactsRequest, context: Context
    ) -> pb.ListContactsResponse:
        unit = caller_unit()
        rows = [row async for row in self._n.contacts.find({"unit_code": unit})]
        if request.group_code:
            rows = [row for row in rows if request.group_code in row.get("group_codes", [])]
        rows.sort(key=lambda row: (row["name"], row["_id"]))
        return pb.ListContactsResponse(contacts=[_contact(row) for row in rows])

    async def DeleteContact(
        self, request: pb.DeleteContactRequest, context: Context
    ) -> pb.DeleteContactResponse:
        unit = caller_unit()
        await self._own("contacts", request.contact_id, unit, "contact")
        await self._n.subscriptions.delete_one({"_id": f"{unit}/contact:{request.contact_id}"})
        await self._n.contacts.delete_one({"_id": request.contact_id})
        return pb.DeleteContactResponse()

    async def PutGroup(self, request: pb.PutGroupRequest, context: Context) -> pb.PutGroupResponse:
        unit = caller_unit()
        group = request.group
        if group.unit_code and group.unit_code != unit:
            raise PermissionDenied(f"{unit} may only manage its own groups")
        violations = Violations()
        check_group(group, violations)
        violations.raise_if_any()
        row = {
            "_id": f"{unit}/{group.code}",
            "unit_code": unit,
            "code": group.code,
            "name": group.name.strip(),
        }
        await self._n.groups.replace_one({"_id": row["_id"]}, row, upsert=True)
        return pb.PutGroupResponse(
            group=pb.Group(code=row["code"], name=row["name"], unit_code=unit)
        )

    async def ListGroups(
        self, request: pb.ListGroupsRequest, context: Context
    ) -> pb.ListGroupsResponse:
        unit = caller_unit()
        rows = sorted(
            [row async for row in self._n.groups.find({"unit_code": unit})],
            key=lambda row: row["code"],
        )
        return pb.ListGroupsResponse(
            groups=[pb.Group(code=r["code"], name=r["name"], unit_code=unit) for r in rows]
        )

    async def DeleteGroup(
        self, request: pb.DeleteGroupRequest, context: Context
    ) -> pb.DeleteGroupResponse:
        unit = caller_unit()
        await self._own("groups", f"{unit}/{request.code}", unit, "group")
        members = [
            row["_id"]
            async for row in self._n.contacts.find({"unit_code": unit})
            if request.code in row.get("group_codes", [])
        ]
        if members:
            raise FailedPrecondition(
                f"group {request.code} still has {len(members)} contact(s): move them first",
                reason="GROUP_NOT_EMPTY",
            )
        await self._n.subscriptions.delete_one({"_id": f"{unit}/group:{request.code}"})
        await self._n.groups.delete_one({"_id": f"{unit}/{request.code}"})
        return pb.DeleteGroupResponse()

    # --- subscriptions --------------------------------------------------------------------

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: Context
    ) -> pb.SubscribeResponse:
        unit = caller_unit()
        subscription = request.subscription
        if subscription.unit_code and subscription.unit_code != unit:
            raise PermissionDenied(f"{unit} may only manage its own subscriptions")
        violations = Violations()
        check_subscription(subscription, violations)
        violations.raise_if_any()
        if subscription.contact_id:
            await self._own("contacts", subscription.contact_id, unit, "contact")
            target = f"contact:{subscription.contact_id}"
        else:
            await self._own("groups", f"{unit}/{subscription.group_code}", unit, "group")
            target = f"group:{subscription.group_code}"
        row: Doc = {
            "_id": f"{unit}/{target}",
            "target": target,
            "unit_code": unit,
            "contact_id": subscription.contact_id,
            "group_code": subscription.group_code,
            "event_kinds": sorted(set(subscription.event_kinds)),
            "channels": [c for c in CHANNELS if c in set(subscription.channels)],
        }
        await self._n.subscriptions.replace_one({"_id": row["_id"]}, row, upsert=True)
        return pb.SubscribeResponse(subscription=_subscription(row))

    async def Unsubscribe(
        self, request: pb.UnsubscribeRequest, context: Context
    ) -> pb.UnsubscribeResponse:
        unit = caller_unit()
        await self._own("subscriptions", f"{unit}/{request.subscription_id}", unit, "subscription")
        await self._n.subscriptions.delete_one({"_id": f"{unit}/{request.subscription_id}"})
        return pb.UnsubscribeResponse()

    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: Context
    ) -> pb.ListSubscriptionsResponse:
        unit = caller_unit()
        rows = sorted(
            [row async for row in self._n.subscriptions.find({"unit_code": unit})],
            key=lambda row: row["target"],
        )
        return pb.ListSubscriptionsResponse(subscriptions=[_subscription(r) for r in rows])

    # --- operators ------------------------------------------------------------------------

    async def ListFailedNotifications(
        self, request: pb.ListFailedNotificationsRequest, context: Context
    ) -> pb.ListFailedNotificationsResponse:
        unit = caller_unit()
        size = page_size(request.page_size, default=50, maximum=200)
        if request.channel:
            violations = Violations()
            violations.require(
                request.channel in CHANNELS, "channel", f"is not one of {', '.join(CHANNELS)}"
            )
            violations.raise_if_any()
        rows = [
            row
            async for row in self._n.jobs.find({"unit_code": unit, "state": "dead"})
            if not request.channel or row["channel"] == request.channel
        ]
        rows.sort(key=lambda row: row["failed_at"], reverse=True)
        response = pb.ListFailedNotificationsResponse()
        for row in rows[:size]:
            item = response.notifications.add(
                notification_id=row["_id"],
                unit_code=row["unit_code"],
                contact_id=row["contact_id"],
                channel=row["channel"],
                kind=row["kind"],
                title=row["title"],
                attempts=row["attempts"],
                reason=row["last_error"],
            )
            item.created_at.FromDatetime(row["created_at"])
            item.failed_at.FromDatetime(row["failed_at"])
        return response
