"""signature-service's collections: the verdicts recorded and the operators' trust anchors.

    store = SignatureStore(deps.db)
    await store.record_verification(verified, event_id=e)   # by document id, with its cause
    await store.verdict_for_event("doc-1", e)             # DocumentVerified | None
    found = await store.verification("doc-1")             # Verification | None
    await store.add_operator_anchor(sha256, pem, "province-it")   # False: it was there
    await store.operator_anchors()                        # [OperatorAnchor]
    await store.start_attempt("doc-1")                    # 1, 2, ...: verifications begun

The collections are keyed by ``_id`` (document id; the anchor's SHA-256; document id), so
they need no other index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lienthong.events.v1.events_pb2 import DocumentVerified
from lienthong_kit.infra import DuplicateKeyError
from lienthong_kit.mongo import AsyncDatabase, Doc

__all__ = ["OperatorAnchor", "SignatureStore", "Verification"]


@dataclass(frozen=True)
class Verification:
    """A document's recorded verdict, with the report as it was published."""

    document_id: str
    verified: DocumentVerified
    verified_at: datetime


@dataclass(frozen=True)
class OperatorAnchor:
    """A trust anchor added with AddTrustAnchor."""

    pem: str
    added_by: str
    hierarchy: int = 0  # lienthong.signature.v1.Hierarchy
    intermediate: bool = False


class SignatureStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._verifications = db["verifications"]
        self._anchors = db["trust_anchors"]
        self._attempts = db["verification_attempts"]

    async def start_attempt(self, document_id: str) -> int:
        """Count one more verification begun for the document (in the store: a run the
        service died in still counts after a restart) and return the count."""
        row = await self._attempts.find_one_and_update(
            {"_id": document_id},
            {"$inc": {"count": 1}, "$set": {"last_at": datetime.now(UTC)}},
            upsert=True,
            return_document=True,  # pymongo.ReturnDocument.AFTER: the count after this one
        )
        return int(row["count"]) if row else 1

    async def end_attempts(self, document_id: str) -> None:
        """The verdict is recorded: forget the count (a redelivery starts afresh)."""
        await self._attempts.delete_one({"_id": document_id})

    async def record_verification(self, verified: DocumentVerified, *, event_id: str = "") -> None:
        """Record (or replace: another event for the document is verified again) a document's
        verdict, with the id of the event it answers."""
        await self._verifications.update_one(
            {"_id": verified.document.document_id},
            {
                "$set": {
                    "verified": verified.SerializeToString(),
                    "verified_at": datetime.now(UTC),
                    "event_id": event_id,
                }
            },
            upsert=True,
        )

    async def verdict_for_event(self, document_id: str, event_id: str) -> DocumentVerified | None:
        """The verdict recorded in answer to ``event_id``, if any (a redelivered event)."""
        found = await self._verifications.find_one(
            {"_id": document_id, "event_id": event_id}, {"verified": 1}
        )
        return None if found is None else DocumentVerified.FromString(bytes(found["verified"]))

    async def verification(self, document_id: str) -> Verification | None:
        found = await self._verifications.find_one({"_id": document_id})
        if found is None:
            return None
        if "verified" in found:
            verified = DocumentVerified.FromString(bytes(found["verified"]))
        else:  # an older record: verdict and reason only (docs/decisions/0401)
            verified = DocumentVerified(
                verdict=found.get("verdict", 0), reason=found.get("reason", "")
            )
        return Verification(document_id, verified, found["verified_at"])

    async def operator_anchors(self) -> list[OperatorAnchor]:
        return [
            OperatorAnchor(
                row["pem"],
                row.get("added_by", ""),
                int(row.get("hierarchy", 0)),
                bool(row.get("intermediate", False)),
            )
            async for row in self._anchors.find({})
        ]

    async def add_operator_anchor(
        self,
        sha256: str,
        pem: str,
        added_by: str,
        *,
        hierarchy: int = 0,
        intermediate: bool = False,
    ) -> bool:
        """Store an operator's anchor (or intermediate) under its fingerprint; False when it was
        there already."""
        try:
            await self._anchors.insert_one(
                {
                    "_id": sha256,
                    "pem": pem,
                    "added_by": added_by,
                    "added_at": datetime.now(UTC),
                    "hierarchy": hierarchy,
                    "intermediate": intermediate,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def remove_operator_anchor(self, sha256: str) -> bool:
        """False when no operator-added certificate had that fingerprint."""
        result = await self._anchors.delete_one({"_id": sha256})
        return bool(result.deleted_count)
