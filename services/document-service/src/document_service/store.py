"""document-service's store: documents (with their outbox) and deliveries (inboxes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import Binary
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from lienthong.common.v1.common_pb2 import DocumentSummary, Recipients
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated
from lienthong_kit.envelope import EventEnvelope
from lienthong_kit.errors import AlreadyExists
from lienthong_kit.mongo import AsyncDatabase, Doc
from lienthong_kit.outbox import outbox_fields

__all__ = ["DocumentStore", "StoredDocument"]


class StoredDocument:
    def __init__(self, raw: Doc) -> None:
        self.raw = raw
        self.summary = DocumentSummary.FromString(bytes(raw["summary"]))
        self.recipients = Recipients.FromString(bytes(raw["recipients"]))
        self.content_summary: str = raw.get("content_summary", "")


class DocumentStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.documents = db["documents"]
        self.deliveries = db["deliveries"]

    async def create_indexes(self) -> None:
        await self.documents.create_indexes(
            [
                IndexModel(
                    [("sender_code", ASCENDING), ("idempotency_key", ASCENDING)], unique=True
                ),
                IndexModel([("sender_code", ASCENDING), ("number_key", ASCENDING)], unique=True),
            ]
        )
        await self.deliveries.create_indexes(
            [
                IndexModel(
                    [
                        ("recipient_code", ASCENDING),
                        ("bounced", ASCENDING),
                        ("delivered_at", DESCENDING),
                    ]
                ),
                IndexModel([("document_id", ASCENDING)]),
            ]
        )

    async def insert_submitted(
        self,
        summary: DocumentSummary,
        recipients: Recipients,
        content_summary: str,
        idempotency_key: str,
        event: tuple[str, str, EventEnvelope],
    ) -> DocumentSummary:
        """Store a new document with its submitted event; a retried key returns the first."""
        year = summary.promulgation_date[:4]
        document: dict[str, Any] = {
            "_id": summary.document_id,
            "sender_code": summary.sender_code,
            "idempotency_key": idempotency_key or summary.document_id,
            "number_key": f"{year}|{summary.code.number}|{summary.code.notation}",
            "summary": Binary(summary.SerializeToString()),
            "recipients": Binary(recipients.SerializeToString()),
            "content_summary": content_summary,
            "submitted_at": summary.submitted_at.ToDatetime(UTC),
            **outbox_fields(*event),
        }
        try:
            await self.documents.insert_one(document)
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

    async def is_recipient(self, document_id: str, unit_code: str) -> bool:
        found = await self.deliveries.find_one(
            {"document_id": document_id, "recipient_code": unit_code, "bounced": False}, {"_id": 1}
        )
        return found is not None

    async def deliveries_of(self, document_id: str) -> list[Doc]:
        cursor = self.deliveries.find({"document_id": document_id}).sort(
            "recipient_code", ASCENDING
        )
        return [delivery async for delivery in cursor]

    async def materialise(self, delivery: DeliveryCreated) -> None:
        """Put a routed delivery in the recipient's inbox with status 01 (arrived); idempotent."""
        await self.deliveries.update_one(
            {"_id": delivery.delivery_id},
            {
                "$setOnInsert": {
                    "document_id": delivery.document.document_id,
                    "recipient_code": delivery.recipient_code,
                    "sender_code": delivery.document.sender_code,
                    "summary": Binary(delivery.document.SerializeToString()),
                    "status_code": "01",
                    "bounced": False,
                    "bounce_reason": "",
                    "delivered_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )

    async def record_bounce(self, bounce: DeliveryBounced) -> None:
        """Remember for the sender that a recipient could not be delivered to; idempotent."""
        await self.deliveries.update_one(
            {"_id": bounce.delivery_id},
            {
                "$setOnInsert": {
                    "document_id": bounce.document.document_id,
                    "recipient_code": bounce.recipient_code,
                    "sender_code": bounce.document.sender_code,
                    "summary": Binary(bounce.document.SerializeToString()),
                    "status_code": "",
                    "bounced": True,
                    "bounce_reason": bounce.reason,
                    "delivered_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )

    async def inbox_page(
        self, unit_code: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Doc]:
        query: Doc = {"recipient_code": unit_code, "bounced": False}
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
