"""document-service's store: documents, deliveries, numbering, paper documents.

Every state change and the event that announces it are written in one single-document write
(the event goes into the record's embedded outbox), so nothing acknowledged is lost and
nothing is announced that did not happen.

Contended state is changed by *inserting* records under a unique key, never by a conditional
update: FerretDB v1 (SQLite) does not apply an update atomically with its filter (its issue
#3040; measured here: 97 "winners" of 20 compare-and-set races, 162 of 200 ``$inc`` lost),
while a unique index decides races exactly. So:

* a delivery's state is the highest ``version`` among its ``delivery_transitions``; a move
  inserts ``<delivery id>#<version + 1>``, and of two clerks acting at once exactly one wins;
  the delivery document keeps a projection of that state for listing and filtering;
* a number is reserved by inserting ``<unit>|<year>|<series>|<number>``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import Binary
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from document_service.lifecycle import ARRIVED, REFUSED, DeliveryState
from lienthong.common.v1.common_pb2 import DocumentSummary, Recipients
from lienthong.events.v1.events_pb2 import (
    DeliveryBounced,
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentVerified,
)
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import AlreadyExists, FailedPrecondition
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.mongo import AsyncDatabase, Doc, GroupInserter, ensure_indexes
from lienthong_kit.outbox import OutboxRelay

__all__ = ["PRODUCER", "DocumentStore", "StoredDocument"]

PRODUCER = "document-service"


class StoredDocument:
    def __init__(self, raw: Doc) -> None:
        self.raw = raw
        self.summary = DocumentSummary.FromString(bytes(raw["summary"]))
        self.recipients = Recipients.FromString(bytes(raw["recipients"]))
        self.content_summary: str = raw.get("content_summary", "")
        self.frozen: bool = raw.get("frozen", False)
        self.attachments: list[Doc] = raw.get("attachments", [])


@dataclass(frozen=True)
class Transition:
    """A delivery moved from ``before`` to ``after``; ``raw`` is the stored delivery."""

    before: DeliveryState
    after: DeliveryState
    raw: Doc


def delivery_state(raw: Doc) -> DeliveryState:
    return DeliveryState(
        raw["status_code"], raw.get("recall_status", ""), raw.get("withdrawn", False)
    )


class DocumentStore:
    def __init__(self, db: AsyncDatabase[Doc], topics: Topics, producer: EventProducer) -> None:
        self.documents = db["documents"]
        self.deliveries = db["deliveries"]
        self.transitions = db["delivery_transitions"]
        self.reservations = db["number_reservations"]
        self.paper = db["paper_documents"]
        self.verifications = db["verifications"]
        # publishes the transitions' events (hand-off: see lienthong_kit.outbox)
        self.transitions_relay = OutboxRelay(self.transitions, producer)
        self._topics = topics
        # submits and paper registrations arrive concurrently from many agencies: their
        # inserts share insertMany commands (each caller still gets its own duplicate error)
        self._new_documents = GroupInserter(self.documents)
        self._new_paper = GroupInserter(self.paper)

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self.documents,
            [
                IndexModel(
                    [("sender_code", ASCENDING), ("idempotency_key", ASCENDING)], unique=True
                ),
                IndexModel([("sender_code", ASCENDING), ("number_key", ASCENDING)], unique=True),
            ],
        )
        await ensure_indexes(
            self.deliveries,
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
            self.transitions, [IndexModel([("delivery_id", ASCENDING), ("version", DESCENDING)])]
        )
        await ensure_indexes(
            self.paper,
            [IndexModel([("unit_code", ASCENDING), ("idempotency_key", ASCENDING)], unique=True)],
        )

    # --- documents ------------------------------------------------------------------------

    async def insert_submitted(
        self, summary: DocumentSummary, idempotency_key: str, fields: Doc, outbox: Doc
    ) -> DocumentSummary:
        """Store a new document with its submitted event; a retried key returns the first."""
        year = summary.promulgation_date[:4]
        document: dict[str, Any] = {
            "_id": summary.document_id,
            "sender_code": summary.sender_code,
            "idempotency_key": idempotency_key or summary.document_id,
            "number_key": f"{year}|{summary.code.number}|{summary.code.notation}",
            "summary": Binary(summary.SerializeToString()),
            "submitted_at": summary.submitted_at.ToDatetime(UTC),
            "frozen": False,
            **fields,
            **outbox,
        }
        try:
            await self._new_documents.insert(document)
        except DuplicateKeyError:
            if idempotency_key:
                first = await self.documents.find_one(
                    {"sender_code": summary.sender_code, "idempotency_key": idempotency_key}
                )
                if first is not None:
                    return StoredDocument(first).summary
            first = await self.documents.find_one(
                {"sender_code": summary.sender_code, "number_key": document["number_key"]}
            )
            if first is None:
                raise
            existing = StoredDocument(first).summary
            raise AlreadyExists(
                f"{summary.sender_code} already issued {summary.code.number}/"
                f"{summary.code.notation} in {year}: document {existing.document_id}",
                reason="DUPLICATE_NUMBER",
                metadata={"document_id": existing.document_id},
            ) from None
        return summary

    async def get(self, document_id: str) -> StoredDocument | None:
        raw = await self.documents.find_one({"_id": document_id})
        return StoredDocument(raw) if raw else None

    async def freeze(self, document_id: str, recall: Doc) -> None:
        await self.documents.update_one(
            {"_id": document_id}, {"$set": {"frozen": True, "recall": recall}}
        )

    # --- numbering ------------------------------------------------------------------------

    async def reserve_number(self, unit: str, year: int, series: str) -> int:
        """The next number of (unit, year, series), starting at 1; exactly one caller gets
        each number however many ask at once. A counter read by key says where to start (it
        may lag: it is only a hint); the reservation insert decides."""
        prefix = f"{unit}|{year}|{series}"
        hint = await self.reservations.find_one({"_id": prefix})
        number = int(hint["last"]) + 1 if hint else 1
        for _ in range(10_000):
            try:
                await self.reservations.insert_one(
                    {"_id": f"{prefix}|{number:08d}", "reserved_at": datetime.now(UTC)}
                )
            except DuplicateKeyError:
                number += 1
                continue
            # Only a hint for the next caller: two first reservations upserting it at once
            # collide on FerretDB (DuplicateKeyError) and either value will do. The number is
            # reserved by the insert above and must reach its caller, not be burned.
            with contextlib.suppress(DuplicateKeyError):
                await self.reservations.replace_one({"_id": prefix}, {"last": number}, upsert=True)
            return number
        raise FailedPrecondition(f"could not reserve a number in {series}: too much contention")

    # --- paper documents ------------------------------------------------------------------

    async def insert_paper(self, document: Doc, outbox: Doc) -> str:
        try:
            await self._new_paper.insert({**document, **outbox})
        except DuplicateKeyError:
            first = await self.paper.find_one(
                {"unit_code": document["unit_code"], "idempotency_key": document["idempotency_key"]}
            )
            if first is None:
                raise
            return str(first["_id"])
        return str(document["_id"])

    # --- deliveries -----------------------------------------------------------------------

    async def delivery(self, delivery_id: str) -> Doc | None:
        return await self.deliveries.find_one({"_id": delivery_id})

    async def delivery_for(self, document_id: str, unit_code: str) -> Doc | None:
        return await self.deliveries.find_one(
            {"document_id": document_id, "recipient_code": unit_code, "bounced": False}
        )

    async def deliveries_of(self, document_id: str) -> list[Doc]:
        cursor = self.deliveries.find({"document_id": document_id}).sort(
            "recipient_code", ASCENDING
        )
        return [delivery async for delivery in cursor]

    async def materialise(self, delivery: DeliveryCreated, delivered_at: datetime) -> None:
        """Put a routed delivery in the recipient's inbox with status 01 (arrived) and
        announce the arrival; idempotent (a redelivered event changes nothing). The arrival
        transition is written first, so a delivery is never listed without a state."""
        fields: Doc = {
            "document_id": delivery.document.document_id,
            "recipient_code": delivery.recipient_code,
            "sender_code": delivery.document.sender_code,
            "priority": delivery.document.priority,
            "summary": Binary(delivery.document.SerializeToString()),
            "status_code": ARRIVED,
            "recall_status": "",
            "withdrawn": False,
            "version": 1,
            "bounced": False,
            "bounce_reason": "",
            "delivered_at": delivered_at,
            "read_at": None,
        }
        await self._insert_transition(
            {"_id": delivery.delivery_id, **fields},
            1,
            DeliveryState(),
            ARRIVED,
            "",
            "",
            delivered_at,
        )
        # an insert, not an upsert: cheaper on FerretDB, and a redelivery changes nothing
        with contextlib.suppress(DuplicateKeyError):
            await self.deliveries.insert_one({"_id": delivery.delivery_id, **fields})

    async def record_verification(self, verified: DocumentVerified, at: datetime) -> None:
        """Keep signature-service's verdict and report for the document; idempotent (keyed by
        the document: a redelivered verdict is the same verdict)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.verifications.insert_one(
                {
                    "_id": verified.document.document_id,
                    "verified": Binary(verified.SerializeToString()),
                    "verified_at": at,
                }
            )

    async def verification(self, document_id: str) -> tuple[DocumentVerified, datetime] | None:
        found = await self.verifications.find_one({"_id": document_id})
        if found is None:
            return None
        return DocumentVerified.FromString(bytes(found["verified"])), found["verified_at"]

    async def record_bounce(self, bounce: DeliveryBounced) -> None:
        """Remember for the sender that a recipient could not be delivered to; idempotent."""
        await self.deliveries.update_one(
            {"_id": bounce.delivery_id},
            {
                "$setOnInsert": {
                    "document_id": bounce.document.document_id,
                    "recipient_code": bounce.recipient_code,
                    "sender_code": bounce.document.sender_code,
                    "priority": bounce.document.priority,
                    "summary": Binary(bounce.document.SerializeToString()),
                    # returned to the sender: 02, the edXML code of a refused document
                    "status_code": REFUSED,
                    "recall_status": "",
                    "withdrawn": False,
                    "bounced": True,
                    "bounce_reason": bounce.reason,
                    "delivered_at": datetime.now(UTC),
                    "read_at": None,
                    "version": 0,
                }
            },
            upsert=True,
        )

    async def mark_read(self, delivery_id: str) -> None:
        await self.deliveries.update_one(
            {"_id": delivery_id, "read_at": None}, {"$set": {"read_at": datetime.now(UTC)}}
        )

    async def current(self, delivery_id: str, hint: int = 0) -> Doc | None:
        """The latest transition of a delivery: its authoritative state. Found by key from a
        version ``hint`` (the delivery's projection) forwards, never by sorting."""
        version = max(hint, 1)
        latest = await self.transitions.find_one({"_id": f"{delivery_id}#{version:06d}"})
        if latest is None and version > 1:
            return await self.transitions.find_one(
                {"delivery_id": delivery_id}, sort=[("version", DESCENDING)]
            )
        while latest is not None:
            newer = await self.transitions.find_one({"_id": f"{delivery_id}#{version + 1:06d}"})
            if newer is None:
                return latest
            latest, version = newer, version + 1
        return None

    async def history(self, delivery_id: str) -> list[Doc]:
        cursor = self.transitions.find({"delivery_id": delivery_id}, {"outbox": 0}).sort(
            "version", ASCENDING
        )
        return [entry async for entry in cursor]

    async def transition(
        self,
        delivery: Doc,
        latest: Doc,
        after: DeliveryState,
        *,
        reported: str,
        description: str,
        staff: str,
    ) -> bool:
        """Record the move from ``latest`` to ``after``; False if another move won the race
        (then read the state again and decide again)."""
        won = await self._insert_transition(
            delivery,
            int(latest["version"]) + 1,
            after,
            reported,
            description,
            staff,
            datetime.now(UTC),
            previous=delivery_state(latest),
        )
        if won:
            await self._project(delivery["_id"])
        return won

    async def _insert_transition(
        self,
        delivery: Doc,
        version: int,
        after: DeliveryState,
        reported: str,
        description: str,
        staff: str,
        at: datetime,
        *,
        previous: DeliveryState | None = None,
    ) -> bool:
        summary = DocumentSummary.FromString(bytes(delivery["summary"]))
        changed = DeliveryStatusChanged(
            delivery_id=delivery["_id"],
            document=summary,
            recipient_code=delivery["recipient_code"],
            status_code=after.status,
            previous_status_code=previous.status if previous else "",
            recall_status=after.recall,
            reported_code=reported,
            description=description,
            staff=staff,
        )
        changed.delivered_at.FromDatetime(delivery["delivered_at"])
        changed.changed_at.FromDatetime(at)
        event = new_event(changed, producer=PRODUCER, occurred_at=at)
        record: Doc = {
            "_id": f"{delivery['_id']}#{version:06d}",
            "delivery_id": delivery["_id"],
            "version": version,
            "status_code": after.status,
            "recall_status": after.recall,
            "withdrawn": after.withdrawn,
            "code": reported,
            "description": description,
            "staff": staff,
            "at": at,
        }
        relay = self.transitions_relay
        async with relay.staged(self._topics.deliveries, delivery["recipient_code"], event) as out:
            try:
                await self.transitions.insert_one({**record, **out.fields})
            except DuplicateKeyError:
                return False
            out.commit()
        return True

    async def _project(self, delivery_id: str) -> None:
        """Copy the latest transition onto the delivery; write, then check that nothing newer
        arrived meanwhile (updates are not atomic on every store), until it holds."""
        hint = 1
        for _ in range(10):
            latest = await self.current(delivery_id, hint)
            if latest is None:
                return
            hint = int(latest["version"])
            await self.deliveries.update_one(
                {"_id": delivery_id},
                {
                    "$set": {
                        "status_code": latest["status_code"],
                        "recall_status": latest["recall_status"],
                        "withdrawn": latest["withdrawn"],
                        "version": latest["version"],
                    }
                },
            )
            again = await self.current(delivery_id, hint)
            if again is not None and again["version"] == latest["version"]:
                return

    async def inbox_page(
        self,
        unit_code: str,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
        status_codes: list[str],
        min_priority: int,
        since: datetime | None,
        unread_only: bool,
    ) -> list[Doc]:
        query: Doc = {"recipient_code": unit_code, "bounced": False, "withdrawn": False}
        if status_codes:
            query["status_code"] = {"$in": status_codes}
        if min_priority:
            query["priority"] = {"$gte": min_priority}
        if unread_only:
            query["read_at"] = None
        if since is not None:
            query["delivered_at"] = {"$gte": since}
        if after is not None:
            at, delivery_id = after
            query["$or"] = [
                {"delivered_at": {"$lt": at}},
                {"delivered_at": at, "_id": {"$lt": delivery_id}},
            ]
        cursor = (
            self.deliveries.find(query)
            .sort([("delivered_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [delivery async for delivery in cursor]
