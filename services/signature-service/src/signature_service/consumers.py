"""signature-service's event handlers: document.submitted in, a verdict recorded and
document.verified out.

    flow = VerificationFlow(store, deps.producer, deps.topics, verifier, fetcher)
    ConsumerSpec("signature-service", [deps.topics.documents], flow.on_document)

A bad document becomes a REJECTED verdict with its reason; a malformed event is dead-lettered
(PoisonEvent); document-service being unreachable is retried (TransientEventError).
"""

from __future__ import annotations

import re

from aiokafka import ConsumerRecord

from lienthong.common.v1.common_pb2 import Verdict
from lienthong.events.v1.events_pb2 import DocumentSubmitted, DocumentVerified
from lienthong_kit.envelope import EventEnvelope, carries, derived_event_id, new_event, unpack
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.logs import get_logger
from signature_service.attachments import AttachmentFetcher
from signature_service.policy import Decision
from signature_service.reports import verification_view
from signature_service.store import SignatureStore
from signature_service.verifier import Verifier

__all__ = ["PRODUCER", "VerificationFlow"]

PRODUCER = "signature-service"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

log = get_logger(__name__)


def _check_event(submitted: DocumentSubmitted) -> None:
    if not submitted.document.document_id:
        raise PoisonEvent("document.submitted without document.document_id")
    for i, ref in enumerate(submitted.attachments):
        if not ref.attachment_id:
            raise PoisonEvent(f"attachments[{i}]: no attachment_id")
        if not SHA256_HEX.match(ref.sha256):
            raise PoisonEvent(f"attachments[{i}]: sha256 {ref.sha256!r} is not lower-case hex")


class VerificationFlow:
    """Consumes document.submitted, records a verdict, publishes document.verified."""

    def __init__(
        self,
        store: SignatureStore,
        producer: EventProducer,
        topics: Topics,
        verifier: Verifier,
        fetcher: AttachmentFetcher,
    ) -> None:
        self._store = store
        self._producer = producer
        self._topics = topics
        self._verifier = verifier
        self._fetcher = fetcher

    async def on_document(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if not carries(envelope, DocumentSubmitted):
            return  # other document events are not signature-service's business
        submitted = unpack(envelope, DocumentSubmitted)
        _check_event(submitted)
        document = submitted.document
        decision = await self._decide(submitted)
        verified = DocumentVerified(
            document=document, recipients=submitted.recipients, **verification_view(decision)
        )
        await self._store.record_verification(verified)
        log.info(
            "document_verified",
            document_id=document.document_id,
            verdict=Verdict.Name(verified.verdict),
            failed_rule=decision.failed_rule,
            signatures=len(decision.signatures),
        )
        await self._producer.publish(
            self._topics.verifications,
            key=document.document_id,
            envelope=new_event(
                verified,
                producer=PRODUCER,
                event_id=derived_event_id(envelope.event_id, "verified"),
                trace_id=envelope.trace_id,
            ),
        )

    async def _decide(self, submitted: DocumentSubmitted) -> Decision:
        files: list[tuple[str, bytes]] = []
        for ref in submitted.attachments:
            data, problem = await self._fetcher.fetch(submitted.document.document_id, ref)
            if data is None:
                return Decision(
                    False,
                    problem,
                    failed_rule="readable-files",
                    reason_vi=f"không lấy được tệp đính kèm để kiểm tra: {problem}",
                )
            files.append((ref.name, data))
        return await self._verifier.verify(
            files, document_type=submitted.document.document_type, direction="outgoing"
        )
