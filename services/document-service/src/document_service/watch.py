"""WatchInbox: push new deliveries to the agency systems connected to this replica.

Every replica tails the deliveries topic from its end (outside any consumer group), so a
delivery reaches a watcher whichever replica it is connected to, whichever replica stored it.
A slow watcher cannot hold up the others: each has a bounded queue, and a watcher that falls
that far behind is disconnected (it reconnects with ``since`` and replays from the store).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC

from document_service.lifecycle import ARRIVED
from lienthong.document.v1.document_service_pb2 import InboxEntry
from lienthong.events.v1.events_pb2 import DeliveryCreated
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.errors import Unavailable

__all__ = ["WatchHub"]

QUEUE_LIMIT = 1000


class WatchHub:
    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Queue[InboxEntry | None]]] = defaultdict(set)

    async def on_event(self, envelope: EventEnvelope) -> None:
        if not carries(envelope, DeliveryCreated):
            return
        delivery = unpack(envelope, DeliveryCreated)
        queues = self._watchers.get(delivery.recipient_code)
        if not queues:
            return
        entry = InboxEntry(
            delivery_id=delivery.delivery_id, document=delivery.document, status_code=ARRIVED
        )
        entry.delivered_at.FromDatetime(envelope.occurred_at.ToDatetime(UTC))
        for queue in list(queues):
            if queue.qsize() >= QUEUE_LIMIT:
                queue.put_nowait(None)  # too far behind: end this stream
                queues.discard(queue)
            else:
                queue.put_nowait(entry)

    @contextmanager
    def subscribe(self, unit: str) -> Iterator[asyncio.Queue[InboxEntry | None]]:
        queue: asyncio.Queue[InboxEntry | None] = asyncio.Queue()
        self._watchers[unit].add(queue)
        try:
            yield queue
        finally:
            self._watchers[unit].discard(queue)
            if not self._watchers[unit]:
                del self._watchers[unit]

    @staticmethod
    async def drain(queue: asyncio.Queue[InboxEntry | None]) -> AsyncIterator[InboxEntry]:
        while True:
            entry = await queue.get()
            if entry is None:
                raise Unavailable("the watcher fell too far behind; reconnect with since")
            yield entry
