"""The transactional outbox, embedded in the owning document (no multi-document transactions).

Why hand-written: docs/decisions/0101-outbox-and-consumer-loop.md.

One event per record, written by the insert that creates the record: inserts are atomic on
every store this platform supports, conditional updates are not on FerretDB v1. A state change
that must announce itself is therefore a new record (see document-service's transitions).

A writer hands its event over with the insert that creates the record::

      async with relay.staged(topic, key, envelope) as staged:
          await documents.insert_one({**document, **staged.fields})
          staged.commit()      # the insert succeeded: publish it

The relay publishes the event from memory, batched with whatever else was handed over, and
never writes the record again. The record carries its relay's *owner* id and a one-second
*slot*; each relay checkpoints, in one small record of its own, the slot up to which all
its records are published, every ``heartbeat_seconds``. If a process dies between an insert
and the publish, its checkpoint goes stale and every other relay (or the restarted process)
republishes that owner's records after its checkpoint, slot by slot (equality lookups), then
removes the checkpoint. Not a "pending" flag cleared after the publish: that clearing is
an update, FerretDB's costly write, once per event (docs/benchmarks.md, "Kit"); and no index
on such a flag, which every insert would pay for (docs/decisions/0200-outbox-hand-off.md).

Nothing acknowledged is lost: an event leaves the relay's hands only after Kafka acknowledged
it. An event may be published twice (a crash after the publish, a relay that stalled past its
checkpoint's lifetime), always with the same event id, which consumers skip. The record keeps
the writer's trace (``traceparent``), so its consumers continue the request's trace although
the relay publishes outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka.errors import KafkaError
from bson import Binary
from pymongo import ASCENDING, DESCENDING, IndexModel

from lienthong_kit.envelope import EventEnvelope, decode_envelope
from lienthong_kit.errors import FieldViolation, InvalidArgument, LienthongError, Unavailable
from lienthong_kit.failpoints import failpoint
from lienthong_kit.infra import INFRA_ERRORS, is_infra_error
from lienthong_kit.kafka import EventProducer
from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import OUTBOX_PARKED, OUTBOX_PENDING
from lienthong_kit.mongo import AsyncCollection, Doc, ensure_indexes
from lienthong_kit.tracing import kafka_headers

__all__ = ["OutboxRelay", "ParkedEvent", "Staged"]

log = get_logger(__name__)

Record = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers

#: the index of the retired *wake* way's flag, left in stores of older versions
LEGACY_PENDING_INDEX = "outbox_pending_1"


def _entry(topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]) -> Doc:
    entry: Doc = {"topic": topic, "key": key, "value": Binary(value)}
    if headers:  # the writer's trace, for the record published later outside it
        entry["headers"] = {name: text.decode() for name, text in headers}
    return entry


def _records(document: Doc) -> list[Record]:
    return [
        (
            entry["topic"],
            entry["key"].encode(),
            bytes(entry["value"]),
            [(name, value.encode()) for name, value in (entry.get("headers") or {}).items()],
        )
        for entry in (document.get("outbox") or {}).values()
    ]


def _slot(at: float) -> int:
    return int(at)  # one-second slots of the wall clock


def _refused_for_good(error: BaseException) -> bool:
    """The broker will never take this record (too large, invalid, not authorised)."""
    return (
        isinstance(error, KafkaError)
        and not isinstance(error, INFRA_ERRORS)
        and not getattr(error, "retriable", False)
    )


@dataclass(frozen=True)
class ParkedEvent:
    """An event the broker refused for good: kept with its reason, never retried."""

    event_id: str
    topic: str
    key: str
    size_bytes: int
    reason: str
    parked_at: datetime


@dataclass
class Staged:
    """An event staged for a record being inserted (the *hand-off* way)."""

    fields: Doc
    slot: int
    record: Record
    committed: bool = field(default=False)

    def commit(self) -> None:
        """The insert that carries :attr:`fields` succeeded: the relay publishes the event."""
        self.committed = True


class OutboxRelay:
    """Publishes the events stored in a collection's records; run as a background task."""

    def __init__(
        self,
        collection: AsyncCollection[Doc],
        producer: EventProducer,
        *,
        idle_seconds: float = 1.0,
        heartbeat_seconds: float = 2.0,
        owner_ttl_seconds: float = 10.0,
        max_in_flight: int = 20_000,
        max_event_bytes: int = 1_000_000,
        unconfirmed_seconds: float = 10.0,
    ) -> None:
        self._collection = collection
        self._owners = collection.database[f"{collection.name}.relays"]
        self._producer = producer
        self._idle = idle_seconds
        self._heartbeat = heartbeat_seconds
        self._ttl = timedelta(seconds=owner_ttl_seconds)
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._handed: list[tuple[int | None, Record]] = []
        self._in_flight: dict[int, int] = {}  # slot -> staged events not yet published
        self._last_slot = 0
        self._max_in_flight = max_in_flight
        self._max_event_bytes = max_event_bytes
        self._parked = collection.database[f"{collection.name}.parked"]
        # slots holding an insert that may or may not have happened (cancelled, reply lost):
        # slot -> (how many, when to look them up and publish what is there)
        self._uncertain: dict[int, tuple[int, float]] = {}
        self._unconfirmed = unconfirmed_seconds
        self._clock_offset = timedelta(0)  # the store's clock minus this replica's

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self._collection,
            [IndexModel([("outbox_owner", ASCENDING), ("outbox_slot", ASCENDING)])],
        )
        await self._report_flagged()

    async def _report_flagged(self) -> None:
        """Say at start if the store holds records flagged the retired *wake* way: no relay
        publishes them any more (decision 0200). Looked up only where the flag's old index
        still exists: a lookup without it would scan the collection."""
        indexes = [index["name"] async for index in await self._collection.list_indexes()]
        if LEGACY_PENDING_INDEX not in indexes:
            return
        if await self._collection.find_one({"outbox_pending": 1}, {"_id": 1}) is not None:
            log.error(
                "outbox_unpublished_legacy_records",
                collection=self._collection.name,
                reason="records flagged outbox_pending: 1 by an older version are not published",
                see="docs/decisions/0200-outbox-hand-off.md",
            )

    # --- writers ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def staged(self, topic: str, key: str, envelope: EventEnvelope) -> AsyncIterator[Staged]:
        """Stage an event for the record about to be inserted; see the module docstring.

        Raises :class:`Unavailable` (before anything is written) while ``max_in_flight``
        events wait for Kafka: the caller retries later instead of piling events up in memory.
        """
        value = envelope.SerializeToString()  # once: checked, stored and published alike
        if len(value) > self._max_event_bytes:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "request",
                        f"the event it makes is {len(value)} bytes; the event log takes at most"
                        f" {self._max_event_bytes}: send fewer or shorter values",
                    )
                ]
            )
        if sum(self._in_flight.values()) >= self._max_in_flight:
            raise Unavailable(
                f"{sum(self._in_flight.values())} events are waiting for the event log"
                " (Kafka); retry shortly"
            )
        slot = self._next_slot()
        headers = kafka_headers()  # the writer's trace: the relay publishes outside it
        staged = Staged(
            fields={
                "outbox": {envelope.event_id: _entry(topic, key, value, headers)},
                "outbox_owner": self.owner,
                "outbox_slot": slot,
            },
            slot=slot,
            record=(topic, key.encode(), value, headers),
        )
        self._in_flight[slot] = self._in_flight.get(slot, 0) + 1
        try:
            yield staged
        except LienthongError:
            self._settle([slot])  # a refusal (a duplicate, a conflict): nothing was written
            raise
        except BaseException:
            # cancelled, or the store's reply lost: the insert may have happened; look the
            # slot up later and publish what is there (consumers skip a repeated event id)
            if staged.committed:
                self._handed.append((slot, staged.record))
            else:
                count, _ = self._uncertain.get(slot, (0, 0.0))
                due = asyncio.get_running_loop().time() + self._unconfirmed
                self._uncertain[slot] = (count + 1, due)
            raise
        else:
            if staged.committed:
                self._handed.append((slot, staged.record))
                self._wake.set()
            else:
                self._settle([slot])

    def republish(self, record: Doc) -> None:
        """Publish a stored record's events again (an idempotent retry found it: its first
        publish may never have happened). Consumers skip the repeated event ids."""
        self._handed.extend((None, entry) for entry in _records(record))
        self._wake.set()

    def _next_slot(self) -> int:
        """The current slot, never lower than one already given (the wall clock may step
        back; a record must never land in a slot a checkpoint already covers)."""
        self._last_slot = max(self._last_slot, _slot(datetime.now(UTC).timestamp()))
        return self._last_slot

    def _settle(self, slots: list[int | None]) -> None:
        for slot in slots:
            if slot is None:
                continue
            left = self._in_flight[slot] - 1
            if left:
                self._in_flight[slot] = left
            else:
                del self._in_flight[slot]
        OUTBOX_PENDING.set(sum(self._in_flight.values()))

    # --- the relay loop --------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while True:
            self._wake.clear()
            published = 0
            heartbeat = loop.time() >= next_beat
            if heartbeat:
                # first, and on its own: the heartbeat must go on while Kafka is unreachable,
                # or the other relays would take this live one for dead
                next_beat = loop.time() + self._heartbeat
                try:
                    await self._checkpoint()
                except Exception as exc:
                    if not is_infra_error(exc):
                        raise
            try:
                published += await self._publish_handed()
                if heartbeat:
                    published += await self.confirm_uncertain()
                    published += await self.recover_orphans()
            except Exception as exc:
                if not is_infra_error(exc):
                    raise
                log.warning("outbox_relay_waiting", error=repr(exc))
                published = 0
                await asyncio.sleep(1.0)
            if published == 0 and not self._handed:
                timeout = max(0.0, min(self._idle, next_beat - loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def stop(self) -> None:
        """On a clean shutdown: publish what was handed over and retire this relay's owner.
        (A heartbeat cancelled in flight may still land after the removal; the checkpoint
        then goes stale and another relay republishes nothing older than it, then removes
        it: harmless.)"""
        await self._publish_handed()
        if not self._in_flight:
            await self._owners.delete_one({"_id": self.owner})

    async def _publish_handed(self) -> int:
        if not self._handed:
            return 0
        handed, self._handed = self._handed, []
        try:
            failpoint("outbox.before_publish")
            await self._publish([record for _, record in handed])
            failpoint("outbox.after_publish")
        except BaseException:
            self._handed[:0] = handed  # not lost: retried on the next pass
            raise
        self._settle([slot for slot, _ in handed])
        return len(handed)

    async def _publish(self, records: list[Record]) -> None:
        """Publish ``records``; one the broker refuses for good is parked with its reason and
        the others still go (a batch is refused whole, so they are retried one by one)."""
        try:
            await self._producer.publish_many(records)
            return
        except Exception as exc:
            if not _refused_for_good(exc):
                raise
        for record in records:
            try:
                await self._producer.publish_many([record])
            except Exception as exc:
                if not _refused_for_good(exc):
                    raise
                await self._park(record, exc)

    async def _park(self, record: Record, error: BaseException) -> None:
        topic, key, value = record[0], record[1], record[2]
        try:
            event_id = decode_envelope(value).event_id
        except Exception:  # noqa: BLE001 - an undecodable record is parked under a new id
            event_id = f"undecodable-{uuid.uuid4()}"
        reason = f"{type(error).__name__}: {error}"
        OUTBOX_PARKED.labels(topic).inc()
        log.error("outbox_event_parked", topic=topic, event_id=event_id, reason=reason)
        await self._parked.replace_one(
            {"_id": event_id},
            {
                "topic": topic,
                "key": key.decode(errors="replace"),
                "size_bytes": len(value),
                "reason": reason,
                "parked_at": datetime.now(UTC),
            },
            upsert=True,
        )

    async def parked(self, limit: int = 100) -> list[ParkedEvent]:
        """The events parked by this collection's relays, newest first."""
        cursor = self._parked.find({}).sort("parked_at", DESCENDING).limit(limit)
        return [
            ParkedEvent(
                event_id=row["_id"],
                topic=row["topic"],
                key=row["key"],
                size_bytes=int(row["size_bytes"]),
                reason=row["reason"],
                parked_at=_aware(row["parked_at"]),
            )
            async for row in cursor
        ]

    async def confirm_uncertain(self) -> int:
        """Publish what is stored in the slots of inserts whose outcome was unknown (the
        caller was cancelled, the store's reply was lost), once ``unconfirmed_seconds`` passed:
        an insert that happened is announced, one that did not leaves nothing to find."""
        now = asyncio.get_running_loop().time()
        published = 0
        for slot, (count, due) in sorted(self._uncertain.items()):
            if due > now:
                continue
            published += await self._publish_slot(self.owner, slot)
            del self._uncertain[slot]
            self._settle([slot] * count)
        return published

    async def _publish_slot(self, owner: str, slot: int) -> int:
        cursor = self._collection.find({"outbox_owner": owner, "outbox_slot": slot}, {"outbox": 1})
        batch = [record async for document in cursor for record in _records(document)]
        if batch:
            await self._publish(batch)
        return len(batch)

    async def _store_now(self) -> datetime:
        """The store's clock (``hello``'s localTime): liveness is judged on one clock for every
        replica, not on each replica's own. Falls back to the last offset seen."""
        with contextlib.suppress(KeyError, TypeError):
            hello = await self._collection.database.command("hello")
            self._clock_offset = _aware(hello["localTime"]) - datetime.now(UTC)
        return datetime.now(UTC) + self._clock_offset

    async def _checkpoint(self) -> None:
        """Record the slot up to which every record of this owner is published: just below
        the oldest slot still in flight (staged, or handed over and not yet acknowledged)."""
        current = self._next_slot()
        through = min(self._in_flight, default=current) - 1
        await self._owners.replace_one(
            {"_id": self.owner},
            {"through_slot": through, "last_slot": current, "at": await self._store_now()},
            upsert=True,
        )

    async def recover_orphans(self) -> int:
        """Publish the records of owners whose checkpoint went stale (a crashed process)."""
        published = 0
        stale_before = await self._store_now() - self._ttl
        owners = [
            owner
            async for owner in self._owners.find({})
            if owner["_id"] != self.owner and _aware(owner["at"]) < stale_before
        ]
        for owner in owners:
            # a dead owner wrote nothing after its last heartbeat and one more interval, in
            # slots of its own clock: bounded by that (a relay dead for a day is not 86,400
            # lookups); checkpoints written before last_slot existed count from their "at"
            last = int(
                owner.get("last_slot", _slot(_aware(owner["at"]).timestamp()))
                + self._ttl.total_seconds()
            )
            for slot in range(int(owner["through_slot"]) + 1, last + 1):
                published += await self._publish_slot(owner["_id"], slot)
            await self._owners.delete_one({"_id": owner["_id"]})
            log.info("outbox_orphans_published", owner=owner["_id"], events=published)
        return published


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
