"""WatchNotifications: push a unit's new in-app notifications to its streams on this replica.

Whichever replica recorded a notification announces it (notification.recorded, on the
notifications topic); every replica tails that topic from its end and hands the stored
notification to the unit's open streams here. A stream whose queue fills (a reader that does
not read) is ended with UNAVAILABLE; the client lists what it missed and watches again. So is
every stream of the unit when its notification cannot be read from the store: the tail goes
on (it would otherwise restart from the topic's end and every watcher would miss what came
meanwhile, without knowing).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager

from lienthong.events.v1.events_pb2 import NotificationRecorded
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.errors import Unavailable
from lienthong_kit.logs import get_logger
from lienthong_kit.mongo import Doc

__all__ = ["NotificationHub"]

QUEUE_LIMIT = 500
FELL_BEHIND = "the stream fell too far behind; list and watch again"
STORE_FAILED = "a notification could not be read from the store; list and watch again"

log = get_logger(__name__)


class NotificationHub:
    def __init__(self, load: Callable[[str], Awaitable[Doc | None]]) -> None:
        self._load = load
        # a queue holds notifications, then possibly the reason the stream ends (a str)
        self._streams: dict[str, set[asyncio.Queue[Doc | str]]] = defaultdict(set)

    async def on_event(self, envelope: EventEnvelope) -> None:
        if not carries(envelope, NotificationRecorded):
            return
        recorded = unpack(envelope, NotificationRecorded)
        if not self._streams.get(recorded.unit_code):
            return
        try:
            row = await self._load(recorded.notification_id)
        except Exception as exc:  # noqa: BLE001 - any store failure: the watchers are told
            log.warning(
                "watch_notification_unreadable",
                unit=recorded.unit_code,
                notification=recorded.notification_id,
                error=str(exc),
            )
            for queue in list(self._streams.get(recorded.unit_code, ())):
                self._end(recorded.unit_code, queue, STORE_FAILED)
            return
        if row is None:
            return
        for queue in list(self._streams.get(recorded.unit_code, ())):
            if queue.qsize() >= QUEUE_LIMIT:
                self._end(recorded.unit_code, queue, FELL_BEHIND)
            else:
                queue.put_nowait(row)

    def _end(self, unit: str, queue: asyncio.Queue[Doc | str], reason: str) -> None:
        queue.put_nowait(reason)
        self._streams[unit].discard(queue)

    @contextmanager
    def watch(self, unit: str) -> Iterator[AsyncIterator[Doc]]:
        queue: asyncio.Queue[Doc | str] = asyncio.Queue()
        self._streams[unit].add(queue)
        try:
            yield self._read(queue)
        finally:
            self._streams[unit].discard(queue)
            if not self._streams[unit]:
                del self._streams[unit]

    @staticmethod
    async def _read(queue: asyncio.Queue[Doc | str]) -> AsyncIterator[Doc]:
        seen: deque[str] = deque(maxlen=QUEUE_LIMIT)  # a redelivered event announces again
        while True:
            row = await queue.get()
            if isinstance(row, str):
                raise Unavailable(row)
            if row["_id"] not in seen:
                seen.append(row["_id"])
                yield row
