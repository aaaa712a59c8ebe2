"""signature-service's event handlers: document.submitted in, a verdict recorded and
document.verified out.

    flow = VerificationFlow(store, deps.producer, deps.topics, verifier, fetcher,
                            max_document_bytes=100 << 20, max_attempts=3)
    ConsumerSpec("signature-service", [deps.topics.documents], flow.on_document)

A bad document becomes a REJECTED verdict with its reason; a malformed event is dead-lettered
(PoisonEvent); document-service being unreachable is retried (TransientEventError). The
attachments are streamed to a temporary folder and verified from there; a document whose
files total more than ``max_document_bytes`` is rejected before any is fetched. Each
verification begun is counted in the store: a document the service died verifying
``max_attempts`` times (a file that kills whatever runs it) is rejected with that reason
instead of being verified again after every restart.
"""

from __future__ import annotations

import re
import tempfile
from collections import OrderedDict
from pathlib import Path

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
# a redelivery comes within a poll or a rebalance of its first delivery: a few polls' worth
PUBLISHED_MEMORY = 10_000

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
        *,
        max_document_bytes: int,
        max_attempts: int,
        spool: Path | None = None,
    ) -> None:
        self._max_document_bytes = max_document_bytes
        self._max_attempts = max_attempts
        self._spool = spool
        self._store = store
        self._producer = producer
        self._topics = topics
        self._verifier = verifier
        self._fetcher = fetcher
        # events whose verdict this process announced (the oldest forgotten first)
        self._published: OrderedDict[str, None] = OrderedDict()

    def announced(self, envelope: EventEnvelope) -> bool:
        """This process announced the event's verdict (the consumer skips a redelivery of it:
        verified and announced once)."""
        return envelope.event_id in self._published

    async def on_document(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if not carries(envelope, DocumentSubmitted):
            return  # other document events are not signature-service's business
        submitted = unpack(envelope, DocumentSubmitted)
        _check_event(submitted)
        document = submitted.document
        # recorded by a run that stopped before its commit: announced as recorded, not verified
        # again (the verdict row is the applied-event marker: docs/decisions/0404)
        verified = await self._store.verdict_for_event(document.document_id, envelope.event_id)
        if verified is None:
            decision = await self._decide(submitted)
            verified = DocumentVerified(
                document=document, recipients=submitted.recipients, **verification_view(decision)
            )
            await self._store.record_verification(verified, event_id=envelope.event_id)
            if submitted.attachments:  # without files no attempt was counted (_decide)
                await self._store.end_attempts(document.document_id)
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
        self._published[envelope.event_id] = None
        while len(self._published) > PUBLISHED_MEMORY:
            self._published.popitem(last=False)

    async def _decide(self, submitted: DocumentSubmitted) -> Decision:
        document_id = submitted.document.document_id
        total = sum(ref.size_bytes for ref in submitted.attachments)
        if total > self._max_document_bytes:
            return _refused(
                f"the document's files total {total} bytes, more than the"
                f" {self._max_document_bytes} verified for one document",
                f"các tệp của văn bản có tổng {total} byte, vượt quá"
                f" {self._max_document_bytes} byte được kiểm tra cho một văn bản",
            )
        if not submitted.attachments:
            # nothing to fetch, spool or run in a worker: no attempt to count either (a
            # document without files cannot kill the validator; docs/decisions/0403)
            return self._verifier.policy.decide(
                [], submitted.document.document_type, direction="outgoing"
            )
        with tempfile.TemporaryDirectory(prefix="signature-", dir=self._spool) as folder:
            files: list[tuple[str, bytes | Path]] = []
            for i, ref in enumerate(submitted.attachments):
                path = Path(folder) / str(i)  # by position: the name is the sender's
                problem = await self._fetcher.fetch(document_id, ref, path)
                if problem:
                    return _refused(problem, f"không lấy được tệp đính kèm để kiểm tra: {problem}")
                files.append((ref.name, path))
            attempt = await self._store.start_attempt(document_id)
            if attempt > self._max_attempts:
                log.error("verification_abandoned", document_id=document_id, attempts=attempt - 1)
                return _refused(
                    f"verification was started {attempt - 1} times and never finished (the"
                    " service stopped while verifying it each time: a file that exhausts or"
                    " crashes the validator)",
                    f"đã bắt đầu kiểm tra {attempt - 1} lần mà không lần nào hoàn tất (dịch vụ"
                    " dừng giữa chừng mỗi lần: có tệp làm cạn kiệt hoặc làm hỏng bộ kiểm tra)",
                )
            return await self._verifier.verify(
                files, document_type=submitted.document.document_type, direction="outgoing"
            )


def _refused(reason: str, reason_vi: str) -> Decision:
    return Decision(False, reason, failed_rule="readable-files", reason_vi=reason_vi)
