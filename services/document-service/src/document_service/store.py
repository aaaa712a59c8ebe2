"""document-service's store: documents, deliveries and their transitions, numbering, paper
documents, verdicts; the outbox relays that publish their events.

Every state change and the event that announces it are written by one insert (the event rides
in the record's embedded outbox and is handed to a relay: docs/decisions/0200-outbox-hand-off.md),
so nothing acknowledged is lost and nothing is announced that did not happen.

Contended state changes by *inserting* under a unique key, never by a conditional update,
which FerretDB v1 does not apply atomically (docs/architecture.md "Storage rules"):

* a delivery's state is the highest ``version`` among its ``delivery_transitions``; a move
  inserts ``<delivery id>#<version + 1>``, and of two clerks acting at once exactly one wins;
  the delivery record keeps a projection of that state for listing and filtering;
* a number is reserved by inserting ``<unit>|<year>|<series>|<number>``.

The API gets typed records (:class:`Document`, :class:`Delivery`, :class:`StatusChange`, ...),
never rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from bson import Binary
from pymongo import ASCENDING, DESCENDING, IndexModel

from document_service.lifecycle import FINAL, DeliveryState
from lienthong.common.v1.common_pb2 import AttachmentRef, DocumentSummary, Forwarded, Recipients
from lienthong.events.v1.events_pb2 import (
    DeliveryBounced,
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentVerified,
)
from lienthong_kit.envelope import EventEnvelope, new_event
from lienthong_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument
from lienthong_kit.infra import DuplicateKeyError
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.mongo import AsyncDatabase, Doc, GroupInserter, ensure_indexes, insert_all
from lienthong_kit.outbox import OutboxRelay, ParkedEvent
from lienthong_kit.paging import TimeKey, after_time_key
from lienthong_kit.vocabulary import StatusCode

__all__ = [
    "PRODUCER",
    "Arrival",
    "Delivery",
    "Document",
    "DocumentStore",
    "InboxPage",
    "PaperDocument",
    "ParkedEvent",
    "Recall",
    "Signer",
    "StatusChange",
    "Verification",
    "arrival",
]

PRODUCER = "document-service"
_T = TypeVar("_T")
MOVE_ATTEMPTS = 20


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    competence: str = ""
    position: str = ""
    full_name: str = ""


@dataclass(frozen=True)
class Document:
    """A submitted document (the summary is what the network sees of it)."""

    summary: DocumentSummary
    recipients: Recipients
    content_summary: str = ""
    to_places: tuple[str, ...] = ()
    promulgation_place: str = ""
    signer: Signer = Signer()
    steering_type: int = 0
    response_for: str = ""
    attachments: tuple[AttachmentRef, ...] = ()
    frozen: bool = False

    @property
    def document_id(self) -> str:
        return self.summary.document_id

    @property
    def sender_code(self) -> str:
        return self.summary.sender_code


@dataclass(frozen=True)
class Recall:
    """The sender's recall, update or replacement request that froze a document."""

    business_type: str
    reason: str
    replacement_document_id: str
    requested_at: datetime


@dataclass(frozen=True)
class PaperDocument:
    """A paper document registered in a unit's book (incoming or outgoing)."""

    id: str
    unit_code: str
    idempotency_key: str
    direction: str
    counterpart: str
    number: str
    notation: str
    document_type: str
    subject: str
    promulgation_date: str
    registered_at: datetime


@dataclass(frozen=True)
class Delivery:
    """A document in a recipient's inbox (or returned to its sender: ``bounced``), with the
    projection of its latest :class:`StatusChange`."""

    id: str
    document: DocumentSummary
    recipient_code: str
    delivered_at: datetime
    status_code: str = StatusCode.ARRIVED
    recall_status: str = ""
    withdrawn: bool = False
    version: int = 1
    bounced: bool = False
    bounce_reason: str = ""
    read_at: datetime | None = None
    # the closed units the sender addressed that routing forwarded to this recipient
    forwarded_from: tuple[Forwarded, ...] = ()

    @property
    def state(self) -> DeliveryState:
        return DeliveryState(self.status_code, self.recall_status, self.withdrawn)


@dataclass(frozen=True)
class StatusChange:
    """One version of a delivery's state: what the recipient (or the sender) reported."""

    delivery_id: str
    version: int
    state: DeliveryState
    reported_code: str
    description: str
    staff: str
    at: datetime


@dataclass(frozen=True)
class InboxPage:
    deliveries: list[Delivery]
    #: what the next page starts after; None on the last page
    next_after: TimeKey | None


@dataclass(frozen=True)
class Verification:
    """signature-service's verdict on a document, and when it was given."""

    verified: DocumentVerified
    at: datetime


@dataclass(frozen=True)
class Arrival:
    """A routed delivery staged for the inbox: its arrival transition (with the event that
    announces it) and its delivery record, written with the others of its poll."""

    delivery: Delivery
    transition: Doc
    event: EventEnvelope


def arrival(delivery: DeliveryCreated, delivered_at: datetime) -> Delivery:
    """A routed delivery as it enters the recipient's inbox: status 01 (arrived)."""
    return Delivery(
        id=delivery.delivery_id,
        document=delivery.document,
        recipient_code=delivery.recipient_code,
        delivered_at=delivered_at,
        forwarded_from=tuple(delivery.forwarded_from),
    )


# --- the store ----------------------------------------------------------------------------


class DocumentStore:
    def __init__(
        self,
        db: AsyncDatabase[Doc],
        topics: Topics,
        producer: EventProducer,
        *,
        max_event_bytes: int = 1_000_000,
        unconfirmed_seconds: float = 10.0,
    ) -> None:
        self._documents = db["documents"]
        self._deliveries = db["deliveries"]
        self._transitions = db["delivery_transitions"]
        self._reservations = db["number_reservations"]
        self._paper = db["paper_documents"]
        self._verifications = db["verifications"]
        self._topics = topics
        self._max_event_bytes = max_event_bytes
        # each relay publishes the events handed over by the inserts into its collection
        limits: dict[str, Any] = {
            "max_event_bytes": max_event_bytes,
            "unconfirmed_seconds": unconfirmed_seconds,
        }
        self._documents_relay = OutboxRelay(self._documents, producer, idle_seconds=0.5, **limits)
        self._paper_relay = OutboxRelay(self._paper, producer, idle_seconds=0.5, **limits)
        self._transitions_relay = OutboxRelay(self._transitions, producer, **limits)
        self._finishing: set[asyncio.Task[Any]] = set()
        self.relays = (self._documents_relay, self._transitions_relay, self._paper_relay)
        # submits and paper registrations arrive concurrently from many agencies: their
        # inserts share insertMany commands (each caller still gets its own duplicate error)
        self._new_documents = GroupInserter(self._documents)
        self._new_paper = GroupInserter(self._paper)

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self._documents,
            [
                IndexModel(
                    [("sender_code", ASCENDING), ("idempotency_key", ASCENDING)], unique=True
                ),
                IndexModel([("sender_code", ASCENDING), ("number_key", ASCENDING)], unique=True),
                IndexModel("attachments.attachment_id"),
            ],
        )
        await ensure_indexes(
            self._deliveries,
            [
                IndexModel(
                    [
                        ("recipient_code", ASCENDING),
                        ("bounced", ASCENDING),
                        ("delivered_at", DESCENDING),
                    ]
                ),
                IndexModel([("document_id", ASCENDING)]),
            ],
        )
        await ensure_indexes(
            self._transitions, [IndexModel([("delivery_id", ASCENDING), ("version", DESCENDING)])]
        )
        await ensure_indexes(
            self._paper,
            [IndexModel([("unit_code", ASCENDING), ("idempotency_key", ASCENDING)], unique=True)],
        )
        for relay in self.relays:
            await relay.create_indexes()

    # --- documents ------------------------------------------------------------------------

    async def _finish(self, work: Awaitable[_T]) -> _T:
        """Run a write and its hand-off to the end even if the caller goes away (a deadline, a
        cancelled call): an insert that happened is always announced."""
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._finishing.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its caller may be gone

    async def submit(
        self, document: Document, idempotency_key: str, event: EventEnvelope, fingerprint: str = ""
    ) -> DocumentSummary:
        """Store a new document with its submitted event; a retried key returns the first
        (and announces it again: its first announcement may have been lost), a key reused
        for a different request is refused."""
        return await self._finish(self._submit(document, idempotency_key, event, fingerprint))

    async def _submit(
        self, document: Document, idempotency_key: str, event: EventEnvelope, fingerprint: str
    ) -> DocumentSummary:
        relay = self._documents_relay
        async with relay.staged(self._topics.documents, document.document_id, event) as staged:
            stored = await self._insert_document(
                document, idempotency_key, staged.fields, fingerprint
            )
            if stored.document_id == document.document_id:  # new, not a retried key
                staged.commit()
        return stored

    async def _insert_document(
        self, document: Document, idempotency_key: str, outbox: Doc, fingerprint: str
    ) -> DocumentSummary:
        summary = document.summary
        year = summary.promulgation_date[:4]
        row = {
            **_document_row(document, idempotency_key or document.document_id),
            "number_key": f"{year}|{summary.code.number}|{summary.code.notation}",
            "request_sha256": fingerprint,
            **outbox,
        }
        try:
            await self._new_documents.insert(row)
        except DuplicateKeyError:
            if idempotency_key:
                first = await self._documents.find_one(
                    {"sender_code": summary.sender_code, "idempotency_key": idempotency_key}
                )
                if first is not None:
                    _same_request(first, fingerprint, idempotency_key)
                    self._documents_relay.republish(first)
                    return _summary(first)
            first = await self._documents.find_one(
                {"sender_code": summary.sender_code, "number_key": row["number_key"]}
            )
            if first is None:
                raise
            existing = _summary(first)
            raise AlreadyExists(
                f"{summary.sender_code} already issued {summary.code.number}/"
                f"{summary.code.notation} in {year}: document {existing.document_id}",
                reason="DUPLICATE_NUMBER",
                metadata={"document_id": existing.document_id},
            ) from None
        return summary

    async def get(self, document_id: str) -> Document | None:
        row = await self._documents.find_one({"_id": document_id})
        return _document(row) if row else None

    async def referenced_attachments(self, attachment_ids: list[str]) -> set[str]:
        """Those of ``attachment_ids`` some document names."""
        cursor = self._documents.find(
            {"attachments.attachment_id": {"$in": attachment_ids}}, {"attachments": 1}
        )
        wanted = set(attachment_ids)
        return {
            ref["attachment_id"]
            async for row in cursor
            for ref in row.get("attachments", [])
            if ref["attachment_id"] in wanted
        }

    async def freeze(self, document_id: str, recall: Recall) -> None:
        await self._documents.update_one(
            {"_id": document_id}, {"$set": {"frozen": True, "recall": asdict(recall)}}
        )

    # --- numbering ------------------------------------------------------------------------

    async def reserve_number(self, unit: str, year: int, series: str) -> int:
        """The next number of (unit, year, series), starting at 1; exactly one caller gets
        each number however many ask at once. A counter read by key says where to start (it
        may lag: it is only a hint); the reservation insert decides."""
        prefix = f"{unit}|{year}|{series}"
        hint = await self._reservations.find_one({"_id": prefix})
        number = int(hint["last"]) + 1 if hint else 1
        for _ in range(10_000):
            try:
                await self._reservations.insert_one(
                    {"_id": f"{prefix}|{number:08d}", "reserved_at": datetime.now(UTC)}
                )
            except DuplicateKeyError:
                number += 1
                continue
            # Only a hint for the next caller: two first reservations upserting it at once
            # collide on FerretDB (DuplicateKeyError) and either value will do. The number is
            # reserved by the insert above and must reach its caller, not be burned.
            with contextlib.suppress(DuplicateKeyError):
                await self._reservations.replace_one({"_id": prefix}, {"last": number}, upsert=True)
            return number
        raise FailedPrecondition(f"could not reserve a number in {series}: too much contention")

    # --- paper documents ------------------------------------------------------------------

    async def register_paper(
        self, paper: PaperDocument, event: EventEnvelope, fingerprint: str = ""
    ) -> str:
        """Store a paper registration with its event; a retried key returns the first id
        (announced again), a key reused for a different registration is refused."""
        return await self._finish(self._register_paper(paper, event, fingerprint))

    async def _register_paper(
        self, paper: PaperDocument, event: EventEnvelope, fingerprint: str
    ) -> str:
        async with self._paper_relay.staged(self._topics.documents, paper.id, event) as staged:
            stored_id = await self._insert_paper(paper, staged.fields, fingerprint)
            if stored_id == paper.id:  # new, not a retried idempotency key
                staged.commit()
        return stored_id

    async def _insert_paper(self, paper: PaperDocument, outbox: Doc, fingerprint: str) -> str:
        row = _flat(paper)
        row["_id"] = row.pop("id")
        try:
            await self._new_paper.insert({**row, "request_sha256": fingerprint, **outbox})
        except DuplicateKeyError:
            first = await self._paper.find_one(
                {"unit_code": paper.unit_code, "idempotency_key": paper.idempotency_key}
            )
            if first is None:
                raise
            _same_request(first, fingerprint, paper.idempotency_key)
            self._paper_relay.republish(first)
            return str(first["_id"])
        return paper.id

    # --- verdicts -------------------------------------------------------------------------

    async def record_verifications(self, verdicts: list[tuple[DocumentVerified, datetime]]) -> None:
        """Keep signature-service's verdicts and reports for their documents in one write;
        idempotent (keyed by the document: a redelivered verdict is the same verdict)."""
        await insert_all(
            self._verifications,
            [
                {
                    "_id": verified.document.document_id,
                    "verified": Binary(verified.SerializeToString()),
                    "verified_at": at,
                }
                for verified, at in verdicts
            ],
        )

    async def verification(self, document_id: str) -> Verification | None:
        found = await self._verifications.find_one({"_id": document_id})
        if found is None:
            return None
        return Verification(
            DocumentVerified.FromString(bytes(found["verified"])), found["verified_at"]
        )

    # --- deliveries -----------------------------------------------------------------------

    async def delivery(self, delivery_id: str) -> Delivery | None:
        row = await self._deliveries.find_one({"_id": delivery_id})
        return _delivery(row) if row else None

    async def delivery_for(self, document_id: str, unit_code: str) -> Delivery | None:
        row = await self._deliveries.find_one(
            {"document_id": document_id, "recipient_code": unit_code, "bounced": False}
        )
        return _delivery(row) if row else None

    async def deliveries_of(self, document_id: str) -> list[Delivery]:
        cursor = self._deliveries.find({"document_id": document_id}).sort(
            "recipient_code", ASCENDING
        )
        return [_delivery(row) async for row in cursor]

    async def pending_to(self, unit_code: str, *, sample: int) -> tuple[int, list[str]]:
        """How many deliveries to ``unit_code`` are not final yet, and the document ids of up to
        ``sample`` of them, oldest first."""
        query: Doc = {
            "recipient_code": unit_code,
            "bounced": False,
            "status_code": {"$nin": sorted(FINAL)},
        }
        count = await self._deliveries.count_documents(query)
        cursor = (
            self._deliveries.find(query, {"document_id": 1})
            .sort("delivered_at", ASCENDING)
            .limit(sample)
        )
        return count, [row["document_id"] async for row in cursor]

    async def materialise(self, delivery: DeliveryCreated, delivered_at: datetime) -> None:
        """Put a routed delivery in the recipient's inbox with status 01 (arrived) and
        announce the arrival; idempotent (a redelivered event changes nothing)."""
        await self.materialise_many([self.stage_arrival(delivery, delivered_at)])

    def stage_arrival(self, delivery: DeliveryCreated, delivered_at: datetime) -> Arrival:
        """What :meth:`materialise_many` writes for ``delivery``; raises InvalidArgument, before
        anything is written, if the event announcing it would be too large."""
        arrived = arrival(delivery, delivered_at)
        row, event = self._transition_row(
            arrived,
            1,
            arrived.state,
            reported=StatusCode.ARRIVED,
            description="",
            staff="",
            at=delivered_at,
        )
        size = event.ByteSize()
        if size > self._max_event_bytes:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "delivery",
                        f"its arrival event is {size} bytes; the event log takes at most"
                        f" {self._max_event_bytes}",
                    )
                ]
            )
        return Arrival(arrived, row, event)

    async def materialise_many(self, arrivals: list[Arrival]) -> None:
        """Put staged deliveries in their recipients' inboxes, announcing each arrival: one
        ``insertMany`` of the arrival transitions, then one of the delivery records, so a
        delivery is never listed without a state. Idempotent: what a redelivered event would
        insert again is already there (its event was published, or is republished by the
        relay's recovery), and is left as it is."""
        if not arrivals:
            return
        relay = self._transitions_relay
        async with contextlib.AsyncExitStack() as stack:
            staged = [
                await stack.enter_async_context(
                    relay.staged(self._topics.deliveries, item.delivery.recipient_code, item.event)
                )
                for item in arrivals
            ]
            rows = [
                {**item.transition, **out.fields}
                for item, out in zip(arrivals, staged, strict=True)
            ]
            already = await insert_all(self._transitions, rows)
            for index, out in enumerate(staged):
                if index not in already:
                    out.commit()
        # inserts, not upserts: cheaper on FerretDB, and a redelivery changes nothing
        await insert_all(self._deliveries, [_delivery_row(item.delivery) for item in arrivals])

    async def record_bounce(self, bounce: DeliveryBounced) -> None:
        """Remember for the sender that a recipient could not be delivered to; idempotent."""
        returned = Delivery(
            id=bounce.delivery_id,
            document=bounce.document,
            recipient_code=bounce.recipient_code,
            delivered_at=datetime.now(UTC),
            # returned to the sender: 02, the edXML code of a refused document
            status_code=StatusCode.REFUSED,
            version=0,
            bounced=True,
            bounce_reason=bounce.reason,
        )
        row = _delivery_row(returned)
        del row["_id"]
        await self._deliveries.update_one(
            {"_id": bounce.delivery_id}, {"$setOnInsert": row}, upsert=True
        )

    async def mark_read(self, delivery_id: str) -> None:
        await self._deliveries.update_one(
            {"_id": delivery_id, "read_at": None}, {"$set": {"read_at": datetime.now(UTC)}}
        )

    async def inbox_page(
        self,
        unit_code: str,
        *,
        limit: int,
        after: TimeKey | None = None,
        status_codes: list[str] | None = None,
        min_priority: int = 0,
        since: datetime | None = None,
        unread_only: bool = False,
    ) -> InboxPage:
        """A page of a unit's inbox, newest first, starting after ``after``."""
        query: Doc = {"recipient_code": unit_code, "bounced": False, "withdrawn": False}
        if status_codes:
            query["status_code"] = {"$in": status_codes}
        if min_priority:
            query["priority"] = {"$gte": min_priority}
        if unread_only:
            query["read_at"] = None
        if since is not None:
            query["delivered_at"] = {"$gte": since}
        query.update(after_time_key(after, "delivered_at"))
        cursor = (
            self._deliveries.find(query)
            .sort([("delivered_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)  # one more: is there a next page?
        )
        rows = [_delivery(row) async for row in cursor]
        if len(rows) <= limit:
            return InboxPage(rows, None)
        last = rows[limit - 1]
        return InboxPage(rows[:limit], TimeKey(last.delivered_at, last.id))

    # --- transitions ----------------------------------------------------------------------

    async def current(self, delivery_id: str, hint: int = 0) -> StatusChange | None:
        """The latest transition of a delivery: its authoritative state. Found by key from a
        version ``hint`` (the delivery's projection) forwards, never by sorting."""
        version = max(hint, 1)
        latest = await self._transitions.find_one({"_id": _transition_id(delivery_id, version)})
        if latest is None and version > 1:
            latest = await self._transitions.find_one(
                {"delivery_id": delivery_id}, sort=[("version", DESCENDING)]
            )
            return _status_change(latest) if latest else None
        while latest is not None:
            newer = await self._transitions.find_one(
                {"_id": _transition_id(delivery_id, version + 1)}
            )
            if newer is None:
                return _status_change(latest)
            latest, version = newer, version + 1
        return None

    async def history(self, delivery_id: str) -> list[StatusChange]:
        cursor = self._transitions.find({"delivery_id": delivery_id}, {"outbox": 0}).sort(
            "version", ASCENDING
        )
        return [_status_change(row) async for row in cursor]

    async def move(
        self,
        delivery: Delivery,
        decide: Callable[[DeliveryState], DeliveryState | None],
        *,
        reported: str,
        description: str,
        staff: str,
        key: str = "",
    ) -> DeliveryState | None:
        """Move ``delivery`` to ``decide(its current state)``, deciding again on the new state
        whenever another move wins the race (another clerk, or a recall). None when it has no
        state yet or ``decide`` declines; FailedPrecondition(CONTENTION) if it keeps losing.
        A ``key`` already recorded on this delivery returns the state that move produced."""
        for _ in range(MOVE_ATTEMPTS):
            if key:
                done = await self._moved_with(delivery.id, key, reported, description, staff)
                if done is not None:
                    # the first attempt may have died between its insert and its projection
                    await self._finish(self._project(delivery.id))
                    return done
            latest = await self.current(delivery.id, delivery.version)
            after = decide(latest.state) if latest else None
            if latest is None or after is None:
                return None
            won = await self._finish(
                self._transition(
                    delivery,
                    latest,
                    after,
                    reported=reported,
                    description=description,
                    staff=staff,
                    key=key,
                )
            )
            if won:
                return after
        raise FailedPrecondition("the delivery keeps changing; try again", reason="CONTENTION")

    async def _moved_with(
        self, delivery_id: str, key: str, reported: str, description: str, staff: str
    ) -> DeliveryState | None:
        """The state a move with ``key`` produced, if one was recorded (a retry whose first
        answer was lost); the same key for another report is refused."""
        row = await self._transitions.find_one(
            {"delivery_id": delivery_id, "idempotency_key": key}, {"outbox": 0}
        )
        if row is None:
            return None
        done = _status_change(row)
        if (done.reported_code, done.description, done.staff) != (reported, description, staff):
            raise FailedPrecondition(
                f"idempotency_key: {key!r} was used for another report on this delivery"
                f" ({done.reported_code} at version {done.version})",
                reason="IDEMPOTENCY_KEY_REUSED",
            )
        return done.state

    async def _transition(
        self,
        delivery: Delivery,
        latest: StatusChange,
        after: DeliveryState,
        *,
        reported: str,
        description: str,
        staff: str,
        key: str = "",
    ) -> bool:
        """Record the move from ``latest`` to ``after``; False if another move won the race."""
        won = await self._insert_transition(
            delivery,
            latest.version + 1,
            after,
            reported=reported,
            description=description,
            staff=staff,
            at=datetime.now(UTC),
            previous=latest.state,
            key=key,
        )
        if won:
            await self._project(delivery.id)
        return won

    async def _insert_transition(
        self,
        delivery: Delivery,
        version: int,
        after: DeliveryState,
        *,
        reported: str,
        description: str,
        staff: str,
        at: datetime,
        previous: DeliveryState | None = None,
        key: str = "",
    ) -> bool:
        row, event = self._transition_row(
            delivery,
            version,
            after,
            reported=reported,
            description=description,
            staff=staff,
            at=at,
            previous=previous,
        )
        relay = self._transitions_relay
        async with relay.staged(self._topics.deliveries, delivery.recipient_code, event) as out:
            try:
                keyed = {"idempotency_key": key} if key else {}
                await self._transitions.insert_one({**row, **keyed, **out.fields})
            except DuplicateKeyError:
                return False
            out.commit()
        return True

    def _transition_row(
        self,
        delivery: Delivery,
        version: int,
        after: DeliveryState,
        *,
        reported: str,
        description: str,
        staff: str,
        at: datetime,
        previous: DeliveryState | None = None,
    ) -> tuple[Doc, EventEnvelope]:
        """A transition's record and the event announcing it."""
        changed = DeliveryStatusChanged(
            delivery_id=delivery.id,
            document=delivery.document,
            recipient_code=delivery.recipient_code,
            status_code=after.status,
            previous_status_code=previous.status if previous else "",
            recall_status=after.recall,
            reported_code=reported,
            description=description,
            staff=staff,
        )
        changed.delivered_at.FromDatetime(delivery.delivered_at)
        changed.changed_at.FromDatetime(at)
        event = new_event(changed, producer=PRODUCER, occurred_at=at)
        row: Doc = {
            "_id": _transition_id(delivery.id, version),
            "delivery_id": delivery.id,
            "version": version,
            "status_code": after.status,
            "recall_status": after.recall,
            "withdrawn": after.withdrawn,
            "code": reported,
            "description": description,
            "staff": staff,
            "at": at,
        }
        return row, event

    async def _project(self, delivery_id: str) -> None:
        """Copy the latest transition onto the delivery; write, then check that nothing newer
        arrived meanwhile (updates are not atomic on every store), until it holds."""
        hint = 1
        for _ in range(10):
            latest = await self.current(delivery_id, hint)
            if latest is None:
                return
            hint = latest.version
            await self._deliveries.update_one(
                {"_id": delivery_id},
                {
                    "$set": {
                        "status_code": latest.state.status,
                        "recall_status": latest.state.recall,
                        "withdrawn": latest.state.withdrawn,
                        "version": latest.version,
                    }
                },
            )
            again = await self.current(delivery_id, hint)
            if again is not None and again.version == latest.version:
                return

    # --- operators ------------------------------------------------------------------------

    async def parked_events(self, limit: int) -> list[ParkedEvent]:
        """Events the broker refused for good, newest first, from every relay."""
        found = [event for relay in self.relays for event in await relay.parked(limit)]
        return sorted(found, key=lambda event: event.parked_at, reverse=True)[:limit]


# --- rows <-> records ---------------------------------------------------------------------


def _same_request(first: Doc, fingerprint: str, idempotency_key: str) -> None:
    """A retry carries the same request as the first call; another request under the same key
    is refused, naming what the key already stands for (records from before fingerprints pass)."""
    stored = first.get("request_sha256") or ""
    if stored and fingerprint and stored != fingerprint:
        raise FailedPrecondition(
            f"idempotency_key {idempotency_key!r} was already used for {first['_id']} with a"
            " different request; use a new key for a new request",
            reason="IDEMPOTENCY_KEY_REUSED",
            metadata={"document_id": str(first["_id"])},
        )


def _transition_id(delivery_id: str, version: int) -> str:
    return f"{delivery_id}#{version:06d}"


def _summary(row: Doc) -> DocumentSummary:
    return DocumentSummary.FromString(bytes(row["summary"]))


def _document_row(document: Document, idempotency_key: str) -> Doc:
    summary = document.summary
    return {
        "_id": summary.document_id,
        "sender_code": summary.sender_code,
        "idempotency_key": idempotency_key,
        "summary": Binary(summary.SerializeToString()),
        "submitted_at": summary.submitted_at.ToDatetime(UTC),
        "frozen": document.frozen,
        "recipients": document.recipients.SerializeToString(),
        "content_summary": document.content_summary,
        "to_places": list(document.to_places),
        "promulgation_place": document.promulgation_place,
        "signer": _flat(document.signer),
        "steering_type": document.steering_type,
        "response_for": document.response_for,
        "attachments": [_attachment_row(ref) for ref in document.attachments],
    }


def _flat(record: Signer | PaperDocument) -> dict[str, Any]:
    """A flat record's fields (``dataclasses.asdict`` deep-copies: slow on every write)."""
    return dict(vars(record))


def _document(row: Doc) -> Document:
    return Document(
        summary=_summary(row),
        recipients=Recipients.FromString(bytes(row["recipients"])),
        content_summary=row.get("content_summary", ""),
        to_places=tuple(row.get("to_places", ())),
        promulgation_place=row.get("promulgation_place", ""),
        signer=Signer(**(row.get("signer") or {})),
        steering_type=row.get("steering_type", 0),
        response_for=row.get("response_for", ""),
        attachments=tuple(AttachmentRef(**item) for item in row.get("attachments", [])),
        frozen=row.get("frozen", False),
    )


def _attachment_row(ref: AttachmentRef) -> dict[str, Any]:
    return {
        "attachment_id": ref.attachment_id,
        "name": ref.name,
        "mime_type": ref.mime_type,
        "size_bytes": ref.size_bytes,
        "sha256": ref.sha256,
    }


def _delivery_row(delivery: Delivery) -> Doc:
    summary = delivery.document
    return {
        "_id": delivery.id,
        "document_id": summary.document_id,
        "recipient_code": delivery.recipient_code,
        "sender_code": summary.sender_code,
        "priority": summary.priority,
        "summary": Binary(summary.SerializeToString()),
        "status_code": delivery.status_code,
        "recall_status": delivery.recall_status,
        "withdrawn": delivery.withdrawn,
        "version": delivery.version,
        "bounced": delivery.bounced,
        "bounce_reason": delivery.bounce_reason,
        "delivered_at": delivery.delivered_at,
        "read_at": delivery.read_at,
        **(
            {"forwarded_from": [Binary(f.SerializeToString()) for f in delivery.forwarded_from]}
            if delivery.forwarded_from
            else {}
        ),
    }


def _delivery(row: Doc) -> Delivery:
    return Delivery(
        id=row["_id"],
        document=_summary(row),
        recipient_code=row["recipient_code"],
        delivered_at=row["delivered_at"],
        status_code=row["status_code"],
        recall_status=row.get("recall_status", ""),
        withdrawn=row.get("withdrawn", False),
        version=row.get("version", 1),
        bounced=row.get("bounced", False),
        bounce_reason=row.get("bounce_reason", ""),
        read_at=row.get("read_at"),
        forwarded_from=tuple(
            Forwarded.FromString(bytes(raw)) for raw in row.get("forwarded_from", ())
        ),
    )


def _status_change(row: Doc) -> StatusChange:
    return StatusChange(
        delivery_id=row["delivery_id"],
        version=int(row["version"]),
        state=DeliveryState(
            row["status_code"], row.get("recall_status", ""), row.get("withdrawn", False)
        ),
        reported_code=row.get("code", ""),
        description=row.get("description", ""),
        staff=row.get("staff", ""),
        at=row["at"],
    )
