"""Who may call notification-service's RPCs (docs/security.md shows this table as the matrix).

Everything here belongs to one unit: its notifications, contacts, groups and subscriptions;
the handlers keep each unit to its own. Registry operators see and carry over what belongs to
units a transition plan closes."""

from __future__ import annotations

from lienthong.notification.v1 import notification_service_pb2
from lienthong_kit.authz import AccessTable, Role, operators, units

OWN = "the calling unit's own"

ACCESS = AccessTable.of(
    notification_service_pb2,
    "NotificationService",
    {
        "ListNotifications": units(f"{OWN} notifications"),
        "WatchNotifications": units(f"{OWN} notifications"),
        "MarkRead": units(f"{OWN} notifications"),
        "PutContact": units(f"{OWN} contacts"),
        "GetContact": units(f"{OWN} contacts"),
        "ListContacts": units(f"{OWN} contacts"),
        "DeleteContact": units(f"{OWN} contacts"),
        "PutGroup": units(f"{OWN} groups"),
        "ListGroups": units(f"{OWN} groups"),
        "DeleteGroup": units(f"{OWN} groups"),
        "Subscribe": units(f"{OWN} subscriptions"),
        "Unsubscribe": units(f"{OWN} subscriptions"),
        "ListSubscriptions": units(f"{OWN} subscriptions"),
        "ListFailedNotifications": units(f"{OWN} failed notifications"),
        "DescribeUnits": operators(
            Role.REGISTRY_ADMIN, Role.OBSERVER, scope="any unit's contacts, groups, subscriptions"
        ),
        "CarryOverUnit": operators(
            Role.REGISTRY_ADMIN, scope="a closing unit's, copied to its successors"
        ),
    },
)
