"""The transactional outbox, embedded in the owning document (no multi-document transactions).

A write that must publish an event inserts it in the *same* record::

    await documents.insert_one({**document, **outbox_fields(topic, key, envelope)})
    relay.handoff(document["_id"], topic, key, envelope)   # or relay.wake()

One event per record, written by the insert that creates the record: inserts are atomic on
every store this platform supports, conditional updates are not on FerretDB v1. A state change
that must announce itself is therefore a new record (see document-service's transitions).

:class:`OutboxRelay` publishes pending events with the idempotent producer and removes each
only after Kafka acknowledged it (the writer hands the event over from memory, so the hot path
reads nothing back). A crash between the write and the publish loses nothing:
the relay finds the event on restart. A crash between the publish and the removal publishes
it again with the same event id, which consumers skip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Binary
from pymongo import IndexModel

from lienthong_kit.envelope import EventEnvelope
from lienthong_kit.failpoints import failpoint
from lienthong_kit.kafka import INFRA_ERRORS, EventProducer
from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import OUTBOX_PENDING
from lienthong_kit.mongo import AsyncCollection, Doc, ensure_indexes

__all__ = ["OutboxRelay", "outbox_fields"]

log = get_logger(__name__)

# a record carries one event, written by its insert: once published, the outbox is emptied
PUBLISHED: Doc = {"$set": {"outbox_pending": 0}, "$unset": {"outbox": ""}}


def _entry(topic: str, key: str, envelope: EventEnvelope) -> dict[str, Any]:
    return {"topic": topic, "key": key, "value": Binary(envelope.SerializeToString())}


def outbox_fields(topic: str, key: str, envelope: EventEnvelope) -> Doc:
    """Fields to put in a new document so that it carries one pending event."""
    return {
        "outbox": {envelope.event_id: _entry(topic, key, envelope)},
        "outbox_pending": 1,
        "outbox_at": datetime.now(UTC),
    }


class OutboxRelay:
    """Publishes the events pending in a collection's documents; run as a background task.

    Two ways in:

    * :meth:`handoff` -- the writer, right after its insert succeeded, gives the relay the
      event it just stored. The relay publishes it from memory (no store read), in batches
      with whatever else was handed over meanwhile, and only then marks the record published.
      Marking is an update, the costly write on FerretDB (measured ~900/s against ~19,000/s for
      batched inserts), so it runs in the background with bounded concurrency and never holds
      up publishing; until it is done the record is simply still "pending" in the store.
    * :meth:`wake` / the periodic sweep -- the relay reads ``outbox_pending: 1`` records from
      the store and publishes those it does not already hold. This is how events of a writer
      that crashed after its insert (this process before a restart, or another replica) go
      out. A sweep skips records younger than ``grace_seconds`` that may still be in another
      replica's hands, except at start-up and after :meth:`wake`.

    A crash anywhere loses nothing: an event leaves the store only after Kafka acknowledged
    it. It may be published twice (crash after publish, two replicas sweeping), always with
    the same event id, which consumers skip.
    """

    def __init__(
        self,
        collection: AsyncCollection[Doc],
        producer: EventProducer,
        *,
        idle_seconds: float = 1.0,
        sweep_seconds: float = 5.0,
        grace_seconds: float = 5.0,
        confirm_concurrency: int = 4,
    ) -> None:
        self._collection = collection
        self._producer = producer
        self._idle = idle_seconds
        self._sweep_every = sweep_seconds
        self._grace = timedelta(seconds=grace_seconds)
        self._wake = asyncio.Event()
        self._sweep_now = True  # the first pass takes everything pending
        self._handed: list[tuple[Any, tuple[str, bytes, bytes]]] = []
        self._held: set[Any] = set()  # handed over, not yet marked published
        self._confirms = asyncio.Semaphore(confirm_concurrency)
        self._confirming: set[asyncio.Task[None]] = set()

    async def create_indexes(self) -> None:
        await ensure_indexes(self._collection, [IndexModel("outbox_pending")])

    def wake(self) -> None:
        """Called after a write that added an event: sweep the store for it now."""
        self._sweep_now = True
        self._wake.set()

    def handoff(self, record_id: Any, topic: str, key: str, envelope: EventEnvelope) -> None:
        """Called right after the insert of ``record_id`` carrying this event succeeded."""
        self._held.add(record_id)
        self._handed.append((record_id, (topic, key.encode(), envelope.SerializeToString())))
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        try:
            while True:
                self._wake.clear()
                published = 0
                try:
                    published += await self._publish_handed()
                    if self._sweep_now or loop.time() >= next_sweep:
                        fresh, self._sweep_now = self._sweep_now, False
                        next_sweep = loop.time() + self._sweep_every
                        published += await self.publish_pending(include_recent=fresh)
                except INFRA_ERRORS as exc:
                    log.warning("outbox_relay_waiting", error=repr(exc))
                    published = 0
                    await asyncio.sleep(1.0)
                if published == 0 and not self._handed:
                    timeout = max(0.0, min(self._idle, next_sweep - loop.time()))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        finally:
            for task in self._confirming:
                task.cancel()

    async def _publish_handed(self) -> int:
        if not self._handed:
            return 0
        handed, self._handed = self._handed, []
        try:
            failpoint("outbox.before_publish")
            await self._producer.publish_many([record for _, record in handed])
            failpoint("outbox.after_publish")
        except BaseException:
            self._handed[:0] = handed  # not lost: retried on the next pass
            raise
        OUTBOX_PENDING.set(len(self._held))
        self._spawn(self._confirm([record_id for record_id, _ in handed]))
        return len(handed)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _confirm(self, record_ids: list[Any]) -> None:
        """Mark handed-over records published; a failure leaves them pending for a sweep."""

        async def one(record_id: Any) -> None:
            async with self._confirms:
                with contextlib.suppress(*INFRA_ERRORS):
                    await self._collection.update_one({"_id": record_id}, PUBLISHED)
            self._held.discard(record_id)

        await asyncio.gather(*(one(record_id) for record_id in record_ids))
        OUTBOX_PENDING.set(len(self._held))

    async def publish_pending(self, limit: int = 500, *, include_recent: bool = True) -> int:
        """One sweep over the events pending in the store; returns how many were published."""
        # Equality, not a range: FerretDB answers equality from an index, ranges by scanning.
        cursor = self._collection.find(
            {"outbox_pending": 1}, {"outbox": 1, "outbox_at": 1}, limit=limit
        )
        cutoff = datetime.now(UTC) - self._grace
        documents = [
            document
            async for document in cursor
            if document["_id"] not in self._held
            and (include_recent or _stored_at(document) <= cutoff)
        ]
        batch = [
            (entry["topic"], entry["key"].encode(), bytes(entry["value"]))
            for document in documents
            for entry in (document.get("outbox") or {}).values()
        ]
        if not batch:
            return 0
        failpoint("outbox.before_publish")
        await self._producer.publish_many(batch)
        failpoint("outbox.after_publish")
        # Only the relay writes here after the insert; a second replica's relay may publish
        # the same event again (same event id, skipped downstream) and write the same.
        await asyncio.gather(*(self._mark_published(document) for document in documents))
        return len(batch)

    async def _mark_published(self, document: Doc) -> None:
        async with self._confirms:
            await self._collection.update_one({"_id": document["_id"]}, PUBLISHED)


def _stored_at(document: Doc) -> datetime:
    stored = document.get("outbox_at")
    if not isinstance(stored, datetime):
        return datetime.min.replace(tzinfo=UTC)  # written before outbox_at existed: old
    return stored if stored.tzinfo else stored.replace(tzinfo=UTC)
