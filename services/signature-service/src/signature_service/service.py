"""signature-service's domain for now: a pass-through verdict, recorded and published.

The real validation (PAdES, CMS, chains, revocation, the Decree 30/2020 policy) replaces
:func:`verdict_for` in its own issue; the flow around it (consume, store, publish, serve)
stays as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from grpc import aio

from lienthong.common.v1.common_pb2 import Verdict
from lienthong.events.v1.events_pb2 import DocumentSubmitted, DocumentVerified
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceServicer
from lienthong_kit.envelope import EventEnvelope, carries, derived_event_id, new_event, unpack
from lienthong_kit.errors import NotFound
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.mongo import AsyncDatabase, Doc

__all__ = ["SignatureServicer", "VerificationFlow", "verdict_for"]

PRODUCER = "signature-service"
PASS_THROUGH = "pass-through: signature validation is not enabled yet"  # noqa: S105


def verdict_for(submitted: DocumentSubmitted) -> tuple[Verdict.ValueType, str]:
    return Verdict.VERDICT_ACCEPTED, PASS_THROUGH


class VerificationFlow:
    """Consumes document.submitted, records a verdict, publishes document.verified."""

    def __init__(self, db: AsyncDatabase[Doc], producer: EventProducer, topics: Topics) -> None:
        self.verifications = db["verifications"]
        self._producer = producer
        self._topics = topics

    async def on_document(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if not carries(envelope, DocumentSubmitted):
            return  # other document events are not signature-service's business
        submitted = unpack(envelope, DocumentSubmitted)
        verdict, reason = verdict_for(submitted)
        document_id = submitted.document.document_id
        await self.verifications.update_one(
            {"_id": document_id},
            {"$set": {"verdict": int(verdict), "reason": reason, "verified_at": datetime.now(UTC)}},
            upsert=True,
        )
        verified = DocumentVerified(
            document=submitted.document,
            recipients=submitted.recipients,
            verdict=verdict,
            reason=reason,
        )
        await self._producer.publish(
            self._topics.verifications,
            key=document_id,
            envelope=new_event(
                verified,
                producer=PRODUCER,
                event_id=derived_event_id(envelope.event_id, "verified"),
                trace_id=envelope.trace_id,
            ),
        )


class SignatureServicer(SignatureServiceServicer):
    def __init__(self, flow: VerificationFlow) -> None:
        self._flow = flow

    async def GetVerification(
        self, request: pb.GetVerificationRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetVerificationResponse:
        found = await self._flow.verifications.find_one({"_id": request.document_id})
        if found is None:
            raise NotFound(f"document_id: no verification for {request.document_id!r} yet")
        response = pb.GetVerificationResponse(
            document_id=request.document_id, verdict=found["verdict"], reason=found["reason"]
        )
        response.verified_at.FromDatetime(found["verified_at"])
        return response
