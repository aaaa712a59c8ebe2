"""notification-service's metrics (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "NOTIFICATIONS_FAILED",
    "NOTIFICATIONS_RETRIED",
    "NOTIFICATIONS_SENT",
    "NOTIFICATION_DELIVERY",
]

NOTIFICATIONS_SENT = Counter(
    "lienthong_notifications_sent_total",
    "Notifications accepted by their channel (SMTP server, SMS gateway, webhook receiver, the"
    " in-app store), by channel.",
    ["channel"],
)
NOTIFICATIONS_FAILED = Counter(
    "lienthong_notifications_failed_total",
    "Notifications given up after their attempts (dead-lettered), by channel.",
    ["channel"],
)
NOTIFICATIONS_RETRIED = Counter(
    "lienthong_notifications_retried_total",
    "Failed notification attempts scheduled for another try, by channel.",
    ["channel"],
)
NOTIFICATION_DELIVERY = Histogram(
    "lienthong_notification_delivery_seconds",
    "Time from a notification being recorded to its channel accepting it (retries and a"
    " quiet-hours hold included), by channel.",
    ["channel"],
    buckets=(
        0.01,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        30.0,
        60.0,
        300.0,
        900.0,
        3600.0,
        14400.0,
        43200.0,
    ),
)
