"""WatchNotifications: push a unit's new in-app notifications to its streams on this replica.

Whichever replica recorded a notification announces it (notification.recorded, on the
notifications topic); every replica tails that topic from its end and hands the stored
notification to the unit's open streams here. A stream whose queue fills (a reader that does
not read) is ended with UNAVAILABLE; the client lists what it missed and watches again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager

from lienthong.events.v1.events_pb2 import NotificationRecorded
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.errors import Unavailable
from lienthong_kit.mongo import Doc

__all__ = ["NotificationHub"]

QUEUE_LIMIT = 500


class NotificationHub:
    def __init__(self, load: Callable[[str], Awaitable[Doc | None]]) -> None:
        self._load = load
        self._streams: dict[str, set[asyncio.Queue[Doc | None]]] = defaultdict(set)

    async def on_event(self, envelope: EventEnvelope) -> None:
        if not carries(envelope, NotificationRecorded):
            return
        recorded = unpack(envelope, NotificationRecorded)
        if not self._streams.get(recorded.unit_code):
            return
        row = await self._load(recorded.notification_id)
        if row is None:
            return
        for queue in list(self._streams.get(recorded.unit_code, ())):
            if queue.qsize() >= QUEUE_LIMIT:
                queue.put_nowait(None)
                self._streams[recorded.unit_code].discard(queue)
            else:
                queue.put_nowait(row)

    @contextmanager
    def watch(self, unit: str) -> Iterator[AsyncIterator[Doc]]:
        queue: asyncio.Queue[Doc | None] = asyncio.Queue()
        self._streams[unit].add(queue)
        try:
            yield self._read(queue)
        finally:
            self._streams[unit].discard(queue)
            if not self._streams[unit]:
                del self._streams[unit]

    @staticmethod
    async def _read(queue: asyncio.Queue[Doc | None]) -> AsyncIterator[Doc]:
        seen: deque[str] = deque(maxlen=QUEUE_LIMIT)  # a redelivered event announces again
        while True:
            row = await queue.get()
            if row is None:
                raise Unavailable("the stream fell too far behind; list and watch again")
            if row["_id"] not in seen:
                seen.append(row["_id"])
                yield row
