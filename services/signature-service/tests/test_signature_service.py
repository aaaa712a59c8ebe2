"""signature-service's flow through the real broker and store (pass-through verdict)."""

from __future__ import annotations

from typing import Any

import grpc

from lienthong.common.v1.common_pb2 import DocumentSummary, Recipients, Verdict
from lienthong.events.v1.events_pb2 import DocumentSubmitted, DocumentVerified
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_kit.envelope import decode_envelope, derived_event_id, new_event, unpack
from lienthong_kit.server import ServiceApp
from lienthong_local.waiting import eventually
from signature_service.__main__ import build


async def test_a_submitted_document_gets_one_verdict_event(
    start_service: Any, topic_reader: Any
) -> None:
    service: ServiceApp = await start_service("signature-service", build)
    submitted = DocumentSubmitted(
        document=DocumentSummary(document_id="doc-7", sender_code="000.00.00.H23"),
        recipients=Recipients(unit_codes=["000.01.00.H23"]),
    )
    envelope = new_event(submitted, producer="document-service")
    for _ in range(2):  # the second is a redelivery of the same event
        await service.producer.publish(service.topics.documents, key="doc-7", envelope=envelope)
    (record,) = await topic_reader(service.topics.verifications, 1)
    out = decode_envelope(record.value)
    verified = unpack(out, DocumentVerified)
    assert out.event_id == derived_event_id(envelope.event_id, "verified")
    assert verified.verdict == Verdict.VERDICT_ACCEPTED
    assert list(verified.recipients.unit_codes) == ["000.01.00.H23"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        reply = await eventually(
            lambda: SignatureServiceStub(channel).GetVerification(
                pb.GetVerificationRequest(document_id="doc-7")
            ),
            until=lambda r: r.verdict == Verdict.VERDICT_ACCEPTED,
        )
    assert reply.reason.startswith("pass-through")
