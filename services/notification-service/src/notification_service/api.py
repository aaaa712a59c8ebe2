"""The NotificationService RPCs: in-app notifications, contacts, groups, subscriptions and
the failed notifications. Every call acts on the caller's unit only (``caller_unit()``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from grpc import aio

from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceServicer
from lienthong_kit.authz import current_identity
from lienthong_kit.context import caller_unit
from lienthong_kit.errors import FailedPrecondition, NotFound, PermissionDenied, Violations
from lienthong_kit.logs import get_logger
from lienthong_kit.paging import decode_time_key, encode_time_key, page_size
from notification_service.egress import EgressGuard
from notification_service.settings import CHANNELS
from notification_service.store import (
    Contact,
    FailedJob,
    Group,
    Notification,
    NotificationStore,
    ReminderStore,
    Subscription,
)
from notification_service.validation import check_contact, check_group, check_subscription
from notification_service.watch import NotificationHub

__all__ = ["NotificationServicer"]

log = get_logger(__name__)

Context = aio.ServicerContext[Any, Any]
R = TypeVar("R", Contact, Group, Subscription)

MARK_READ_LIMIT = 500
#: units one DescribeUnits call may name, and successors one CarryOverUnit may
UNITS_LIMIT, SUCCESSORS_LIMIT = 500, 50
MAX_CODE = 64


def _check_codes(codes: list[str], field: str, limit: int, violations: Violations) -> None:
    if not 0 < len(codes) <= limit:
        violations.add(field, f"between 1 and {limit} unit codes (got {len(codes)})")
    for index, code in enumerate(codes):
        if not code.strip():
            violations.add(f"{field}[{index}]", "is empty")
        elif len(code) > MAX_CODE:
            violations.add(f"{field}[{index}]", f"longer than {MAX_CODE} characters")


def _notification(record: Notification) -> pb.Notification:
    item = pb.Notification(
        notification_id=record.id,
        unit_code=record.unit_code,
        channel=record.channel,
        title=record.title,
        body=record.body,
        document_id=record.document_id,
        read=record.read,
        kind=record.kind,
        urgent=record.urgent,
    )
    item.created_at.FromDatetime(record.created_at)
    return item


def _contact(record: Contact) -> pb.Contact:
    return pb.Contact(
        contact_id=record.id,
        unit_code=record.unit_code,
        name=record.name,
        role=record.role,
        email=record.email,
        phone=record.phone,
        webhook_url=record.webhook_url,
        has_webhook_secret=bool(record.webhook_secret),
        group_codes=record.group_codes,
    )


def _group(record: Group) -> pb.Group:
    return pb.Group(code=record.code, name=record.name, unit_code=record.unit_code)


def _subscription(record: Subscription) -> pb.Subscription:
    return pb.Subscription(
        subscription_id=record.target,
        unit_code=record.unit_code,
        contact_id=record.contact_id,
        group_code=record.group_code,
        event_kinds=record.event_kinds,
        channels=record.channels,
    )


#: characters of a failed notification's reason shown by ListFailedNotifications
MAX_REASON = 300


def _failed(record: FailedJob) -> pb.FailedNotification:
    item = pb.FailedNotification(
        notification_id=record.id,
        unit_code=record.unit_code,
        contact_id=record.contact_id,
        channel=record.channel,
        kind=record.kind,
        title=record.title,
        attempts=record.attempts,
        # a failure's reason can quote a receiver's reply: never more than this is shown
        reason=record.reason[:MAX_REASON],
    )
    item.created_at.FromDatetime(record.created_at)
    item.failed_at.FromDatetime(record.failed_at)
    return item


def _own(record: R | None, unit: str, what: str) -> R:
    """``record`` when it exists and belongs to ``unit``; NOT_FOUND / PERMISSION_DENIED."""
    if record is None:
        raise NotFound(f"no {what}")
    if record.unit_code != unit:
        raise PermissionDenied(f"{what} belongs to another unit")
    return record


class NotificationServicer(NotificationServiceServicer):
    def __init__(
        self,
        store: NotificationStore,
        hub: NotificationHub,
        guard: EgressGuard | None = None,
        reminders: ReminderStore | None = None,
    ) -> None:
        self._store = store
        self._hub = hub
        self._guard = guard or EgressGuard()
        self._reminders = reminders

    # --- in-app ---------------------------------------------------------------------------

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Context
    ) -> pb.ListNotificationsResponse:
        unit = caller_unit()
        size = page_size(request.page_size, default=50, maximum=200)
        after = decode_time_key(request.page_token)
        rows = await self._store.notifications(
            unit, unread_only=request.unread_only, after=after, limit=size + 1
        )
        response = pb.ListNotificationsResponse(
            notifications=[_notification(row) for row in rows[:size]]
        )
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_time_key(last.created_at, last.id)
        return response

    async def WatchNotifications(
        self, request: pb.WatchNotificationsRequest, context: Context
    ) -> AsyncIterator[pb.WatchNotificationsResponse]:
        unit = caller_unit()
        with self._hub.watch(unit) as notifications:
            async for notification in notifications:
                yield pb.WatchNotificationsResponse(notification=_notification(notification))

    async def MarkRead(self, request: pb.MarkReadRequest, context: Context) -> pb.MarkReadResponse:
        unit = caller_unit()
        violations = Violations()
        violations.require(
            0 < len(request.notification_ids) <= MARK_READ_LIMIT,
            "notification_ids",
            f"between 1 and {MARK_READ_LIMIT} ids",
        )
        violations.raise_if_any()
        marked = await self._store.mark_read(unit, list(request.notification_ids))
        return pb.MarkReadResponse(marked=marked)

    # --- contacts and groups ----------------------------------------------------------------

    async def _contact(self, contact_id: str, unit: str) -> Contact:
        return _own(await self._store.contact(contact_id), unit, f"contact {contact_id}")

    async def _group(self, code: str, unit: str) -> Group:
        return _own(await self._store.group(unit, code), unit, f"group {unit}/{code}")

    async def PutContact(
        self, request: pb.PutContactRequest, context: Context
    ) -> pb.PutContactResponse:
        unit = caller_unit()
        contact = request.contact
        if contact.unit_code and contact.unit_code != unit:
            raise PermissionDenied(f"{unit} may only manage its own contacts")
        stored: Contact | None = None
        if contact.contact_id:
            stored = await self._contact(contact.contact_id, unit)
        violations = Violations()
        phone = check_contact(
            contact,
            violations,
            has_stored_secret=bool(stored and stored.webhook_secret),
        )
        checked = all(item.field != "contact.webhook_url" for item in violations.items)
        host = urlsplit(contact.webhook_url).hostname if checked else None
        if host:
            refused = await self._guard.check_host(host)
            if refused is not None:
                violations.add("contact.webhook_url", refused)
        groups = {group.code for group in await self._store.groups(unit)}
        for index, code in enumerate(contact.group_codes):
            if code and code not in groups:
                violations.add(f"contact.group_codes[{index}]", f"no group {code!r} in {unit}")
        violations.raise_if_any()
        secret = contact.webhook_secret or (stored.webhook_secret if stored else "")
        record = Contact(
            id=contact.contact_id or str(uuid.uuid4()),
            unit_code=unit,
            name=contact.name.strip(),
            role=contact.role,
            email=contact.email,
            phone=phone,
            webhook_url=contact.webhook_url,
            webhook_secret=secret if contact.webhook_url else "",
            group_codes=tuple(dict.fromkeys(contact.group_codes)),
        )
        await self._store.put_contact(record)
        return pb.PutContactResponse(contact=_contact(record))

    async def GetContact(
        self, request: pb.GetContactRequest, context: Context
    ) -> pb.GetContactResponse:
        record = await self._contact(request.contact_id, caller_unit())
        return pb.GetContactResponse(contact=_contact(record))

    async def ListContacts(
        self, request: pb.ListContactsRequest, context: Context
    ) -> pb.ListContactsResponse:
        records = await self._store.contacts(caller_unit())
        if request.group_code:
            records = [r for r in records if request.group_code in r.group_codes]
        return pb.ListContactsResponse(contacts=[_contact(r) for r in records])

    async def DeleteContact(
        self, request: pb.DeleteContactRequest, context: Context
    ) -> pb.DeleteContactResponse:
        unit = caller_unit()
        await self._contact(request.contact_id, unit)
        await self._store.delete_contact(unit, request.contact_id)
        return pb.DeleteContactResponse()

    async def PutGroup(self, request: pb.PutGroupRequest, context: Context) -> pb.PutGroupResponse:
        unit = caller_unit()
        group = request.group
        if group.unit_code and group.unit_code != unit:
            raise PermissionDenied(f"{unit} may only manage its own groups")
        violations = Violations()
        check_group(group, violations)
        violations.raise_if_any()
        record = Group(unit_code=unit, code=group.code, name=group.name.strip())
        await self._store.put_group(record)
        return pb.PutGroupResponse(group=_group(record))

    async def ListGroups(
        self, request: pb.ListGroupsRequest, context: Context
    ) -> pb.ListGroupsResponse:
        records = await self._store.groups(caller_unit())
        return pb.ListGroupsResponse(groups=[_group(r) for r in records])

    async def DeleteGroup(
        self, request: pb.DeleteGroupRequest, context: Context
    ) -> pb.DeleteGroupResponse:
        unit = caller_unit()
        await self._group(request.code, unit)
        members = [c.id for c in await self._store.contacts(unit) if request.code in c.group_codes]
        if members:
            raise FailedPrecondition(
                f"group {request.code} still has {len(members)} contact(s): move them first",
                reason="GROUP_NOT_EMPTY",
            )
        await self._store.delete_group(unit, request.code)
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
            await self._contact(subscription.contact_id, unit)
        else:
            await self._group(subscription.group_code, unit)
        record = Subscription(
            unit_code=unit,
            contact_id=subscription.contact_id,
            group_code=subscription.group_code,
            event_kinds=tuple(sorted(set(subscription.event_kinds))),
            channels=tuple(c for c in CHANNELS if c in set(subscription.channels)),
        )
        await self._store.put_subscription(record)
        return pb.SubscribeResponse(subscription=_subscription(record))

    async def Unsubscribe(
        self, request: pb.UnsubscribeRequest, context: Context
    ) -> pb.UnsubscribeResponse:
        unit = caller_unit()
        _own(
            await self._store.subscription(unit, request.subscription_id),
            unit,
            f"subscription {unit}/{request.subscription_id}",
        )
        await self._store.delete_subscription(unit, request.subscription_id)
        return pb.UnsubscribeResponse()

    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: Context
    ) -> pb.ListSubscriptionsResponse:
        records = await self._store.subscriptions(caller_unit())
        return pb.ListSubscriptionsResponse(subscriptions=[_subscription(r) for r in records])

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
        records = await self._store.failed_jobs(unit, channel=request.channel, limit=size)
        return pb.ListFailedNotificationsResponse(notifications=[_failed(r) for r in records])

    # --- registry operators: a transition plan ----------------------------------------------

    async def DescribeUnits(
        self, request: pb.DescribeUnitsRequest, context: Context
    ) -> pb.DescribeUnitsResponse:
        violations = Violations()
        _check_codes(list(request.unit_codes), "unit_codes", UNITS_LIMIT, violations)
        violations.raise_if_any()
        response = pb.DescribeUnitsResponse()
        for code in request.unit_codes:
            item = response.units.add(unit_code=code)
            item.contacts.extend(_contact(r) for r in await self._store.contacts(code))
            item.groups.extend(_group(r) for r in await self._store.groups(code))
            item.subscriptions.extend(
                _subscription(r) for r in await self._store.subscriptions(code)
            )
            if self._reminders is not None:
                item.pending_reminders = await self._reminders.pending_for(code)
        return response

    async def CarryOverUnit(
        self, request: pb.CarryOverUnitRequest, context: Context
    ) -> pb.CarryOverUnitResponse:
        violations = Violations()
        if not request.closed_code.strip():
            violations.add("closed_code", "is required: the closing unit's code")
        elif len(request.closed_code) > MAX_CODE:
            violations.add("closed_code", f"longer than {MAX_CODE} characters")
        successors = list(request.successor_codes)
        _check_codes(successors, "successor_codes", SUCCESSORS_LIMIT, violations)
        for index, code in enumerate(successors):
            if code and code == request.closed_code:
                violations.add(f"successor_codes[{index}]", "is the closing unit itself")
        violations.raise_if_any()
        response = pb.CarryOverUnitResponse()
        for successor in dict.fromkeys(successors):
            groups, contacts, subscriptions = await self._store.carry_over(
                request.closed_code, successor
            )
            response.groups += groups
            response.contacts += contacts
            response.subscriptions += subscriptions
        log.info(
            "unit_carried_over",
            closed=request.closed_code,
            successors=successors,
            operator=str(current_identity()),
            groups=response.groups,
            contacts=response.contacts,
            subscriptions=response.subscriptions,
        )
        return response
