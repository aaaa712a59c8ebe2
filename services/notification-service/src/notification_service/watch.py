"""WatchNotifications: push a unit's new in-app notifications to its streams on this replica.

Whichever replica recorded a notification announces it (notification.recorded, on the
notifications topic); every replica tails that topic from its end and hands the stored
notification to the unit's open streams (a :class:`~lienthong_kit.fanout.FanOutHub`). A
stream whose queue fills (a reader that does not read) is ended with UNAVAILABLE; the client
lists what it missed and watches again. So is every stream of the unit when its notification
cannot be read from the store, and the tail goes on
(docs/decisions/0501-a-watch-store-failure-ends-the-units-streams.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager

from lienthong.events.v1.events_pb2 import NotificationRecorded
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.fanout import FanOutHub
from lienthong_kit.logs import get_logger
from notification_service.store import Notification

__all__ = ["FELL_BEHIND", "QUEUE_LIMIT", "STORE_FAILED", "NotificationHub"]

QUEUE_LIMIT = 500
FELL_BEHIND = "the stream fell too far behind; list and watch again"
STORE_FAILED = "a notification could not be read from the store; list and watch again"

log = get_logger(__name__)


class NotificationHub:
    """The notifications topic's tail handler and the units' open streams."""

    def __init__(self, load: Callable[[str], Awaitable[Notification | None]]) -> None:
        self._load = load
        # a redelivered announcement reaches each stream once
        self._hub: FanOutHub[Notification] = FanOutHub(
            queue_limit=QUEUE_LIMIT, fell_behind=FELL_BEHIND, identity=lambda item: item.id
        )

    def watched(self, key: bytes | None) -> bool:
        """The tail decodes only records keyed by a watched unit (notification.recorded is
        keyed by the unit told): with nobody watching, every announcement is skipped undecoded."""
        return key is not None and self._hub.watching(key.decode(errors="replace"))

    async def on_event(self, envelope: EventEnvelope) -> None:
        if not carries(envelope, NotificationRecorded):
            return
        recorded = unpack(envelope, NotificationRecorded)
        if not self._hub.watching(recorded.unit_code):
            return
        try:
            notification = await self._load(recorded.notification_id)
        except Exception as exc:  # noqa: BLE001 - any store failure: the watchers are told
            log.warning(
                "watch_notification_unreadable",
                unit=recorded.unit_code,
                notification=recorded.notification_id,
                error=str(exc),
            )
            self._hub.end(recorded.unit_code, STORE_FAILED)
            return
        if notification is not None:
            self._hub.publish(recorded.unit_code, notification)

    def follows(self, positioned: asyncio.Event) -> None:
        """New streams are refused (UNAVAILABLE) until the tail feeding this hub is positioned."""
        self._hub.follows(positioned)

    def watch(self, unit: str) -> AbstractContextManager[AsyncIterator[Notification]]:
        """The unit's new notifications, until the stream is ended (UNAVAILABLE)."""
        return self._hub.watch(unit)
