"""A bounded per-key fan-out to the live streams of this replica (WatchInbox and friends).

    hub: FanOutHub[InboxEntry] = FanOutHub(queue_limit=1000, fell_behind="reconnect with since")
    hub.publish(unit, entry)              # from a topic tail: every open stream of the unit
    with hub.watch(unit) as items:        # in the streaming RPC
        async for item in items: ...      # ends with UNAVAILABLE(reason) when told to

A slow reader cannot hold up the others: a stream whose queue reaches ``queue_limit`` is ended
with UNAVAILABLE; the client lists what it missed and watches again. A hub fed by a tail
``follows(tail.positioned)``: until the tail has its offsets, a new stream is refused with
UNAVAILABLE (WATCH_STARTING), since what is published meanwhile would never reach it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from lienthong_kit.errors import Unavailable

__all__ = ["FanOutHub"]

T = TypeVar("T")


@dataclass(frozen=True)
class _End:
    reason: str


class FanOutHub(Generic[T]):
    def __init__(
        self,
        *,
        queue_limit: int,
        fell_behind: str,
        identity: Callable[[T], str] | None = None,
    ) -> None:
        self.queue_limit = queue_limit
        self._fell_behind = fell_behind
        # an item published twice (a redelivered event) reaches each stream once
        self._identity = identity
        self._streams: dict[str, set[asyncio.Queue[T | _End]]] = defaultdict(set)
        self._positioned: asyncio.Event | None = None

    def follows(self, positioned: asyncio.Event) -> None:
        """``positioned`` is set once the tail feeding this hub hands on every new item."""
        self._positioned = positioned

    def watching(self, key: str) -> bool:
        return bool(self._streams.get(key))

    def publish(self, key: str, item: T) -> None:
        for queue in list(self._streams.get(key, ())):
            if queue.qsize() >= self.queue_limit:
                self._end(key, queue, self._fell_behind)
            else:
                queue.put_nowait(item)

    def end(self, key: str, reason: str) -> None:
        """End every stream of ``key`` with UNAVAILABLE(reason)."""
        for queue in list(self._streams.get(key, ())):
            self._end(key, queue, reason)

    def _end(self, key: str, queue: asyncio.Queue[T | _End], reason: str) -> None:
        queue.put_nowait(_End(reason))
        self._streams[key].discard(queue)

    @contextmanager
    def watch(self, key: str) -> Iterator[AsyncIterator[T]]:
        if self._positioned is not None and not self._positioned.is_set():
            # a replica just (re)started: a stream opened now would silently miss items
            raise Unavailable(
                "the live feed is still starting on this replica; retry shortly",
                reason="WATCH_STARTING",
            )
        queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._streams[key].add(queue)
        try:
            yield self._read(queue)
        finally:
            streams = self._streams.get(key)
            if streams is not None:
                streams.discard(queue)
                if not streams:
                    del self._streams[key]

    async def _read(self, queue: asyncio.Queue[T | _End]) -> AsyncIterator[T]:
        seen: deque[str] = deque(maxlen=self.queue_limit)
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                raise Unavailable(item.reason)
            if self._identity is not None:
                identity = self._identity(item)
                if identity in seen:
                    continue
                seen.append(identity)
            yield item
