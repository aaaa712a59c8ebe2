"""The transactional outbox, embedded in the owning document (no multi-document transactions).

A write that must publish an event inserts it in the *same* record::

    await documents.insert_one({**document, **outbox_fields(topic, key, envelope)})
    relay.wake()

One event per record, written by the insert that creates the record: inserts are atomic on
every store this platform supports, conditional updates are not on FerretDB v1. A state change
that must announce itself is therefore a new record (see document-service's transitions).

:class:`OutboxRelay` publishes pending events with the idempotent producer and removes each
only after Kafka acknowledged it. A crash between the write and the publish loses nothing:
the relay finds the event on restart. A crash between the publish and the removal publishes
it again with the same event id, which consumers skip.
"""

from __future__ import annotations

import asyncio
import contextlib
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


def _entry(topic: str, key: str, envelope: EventEnvelope) -> dict[str, Any]:
    return {"topic": topic, "key": key, "value": Binary(envelope.SerializeToString())}


def outbox_fields(topic: str, key: str, envelope: EventEnvelope) -> Doc:
    """Fields to put in a new document so that it carries one pending event."""
    return {"outbox": {envelope.event_id: _entry(topic, key, envelope)}, "outbox_pending": 1}


class OutboxRelay:
    """Publishes the events pending in a collection's documents; run as a background task."""

    def __init__(
        self,
        collection: AsyncCollection[Doc],
        producer: EventProducer,
        *,
        idle_seconds: float = 1.0,
    ) -> None:
        self._collection = collection
        self._producer = producer
        self._idle = idle_seconds
        self._wake = asyncio.Event()

    async def create_indexes(self) -> None:
        await ensure_indexes(self._collection, [IndexModel("outbox_pending")])

    def wake(self) -> None:
        """Called after a write that added an event, so it goes out without waiting."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                published = await self.publish_pending()
            except INFRA_ERRORS as exc:
                log.warning("outbox_relay_waiting", error=repr(exc))
                published = 0
                await asyncio.sleep(1.0)
            if published == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle)

    async def publish_pending(self, limit: int = 500) -> int:
        """One pass over the pending events; returns how many were published."""
        # Equality, not a range: FerretDB answers equality from an index, ranges by scanning.
        cursor = self._collection.find({"outbox_pending": 1}, {"outbox": 1}, limit=limit)
        documents = [document async for document in cursor]
        OUTBOX_PENDING.set(sum(len(document.get("outbox") or {}) for document in documents))
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
        entries = document.get("outbox") or {}
        done: Doc = {"$set": {"outbox_pending": 0}}
        if entries:
            done["$unset"] = {f"outbox.{key}": "" for key in entries}
        await self._collection.update_one({"_id": document["_id"]}, done)
