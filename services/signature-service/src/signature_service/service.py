"""signature-service's flow and API.

VerificationFlow consumes document.submitted, fetches each attachment from document-service
(streamed, SHA-256 and size checked against the event's AttachmentRef), verifies the
signatures, applies the policy, records the verdict and publishes document.verified with
the per-signature report. A bad document becomes a REJECTED verdict with its reason; a
malformed event is dead-lettered (PoisonEvent); document-service being unreachable is
retried (TransientEventError).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import grpc
from aiokafka import ConsumerRecord
from grpc import aio

from lienthong.common.v1.common_pb2 import (
    AttachmentRef,
    SignatureCheck,
    SignatureReport,
    Verdict,
)
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import DocumentSubmitted, DocumentVerified
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceServicer
from lienthong_kit.context import caller_unit, current_trace_id
from lienthong_kit.envelope import EventEnvelope, carries, derived_event_id, new_event, unpack
from lienthong_kit.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PoisonEvent,
    TransientEventError,
)
from lienthong_kit.interceptors import TRACE_HEADER, UNIT_HEADER
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.logs import get_logger
from lienthong_kit.mongo import AsyncDatabase, Doc
from signature_service.engine import CertificateResult, Check, SignatureResult, inspect_certificate
from signature_service.pki import (
    fingerprint,
    is_self_signed_ca,
    parse_certificates,
    rfc4514,
    to_pem,
)
from signature_service.policy import Decision
from signature_service.trust import TrustStore
from signature_service.verifier import Verifier

__all__ = ["IDENTITY", "AttachmentFetcher", "SignatureServicer", "VerificationFlow", "report_of"]

PRODUCER = "signature-service"
# the identity signature-service presents to document-service (its mTLS common name; the dev
# header carries it when dev auth is on)
IDENTITY = "signature-service"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
DIRECTIONS = {
    pb.Direction.DIRECTION_UNSPECIFIED: "outgoing",
    pb.Direction.DIRECTION_OUTGOING: "outgoing",
    pb.Direction.DIRECTION_INCOMING: "incoming",
}

log = get_logger(__name__)
Context = aio.ServicerContext[Any, Any]


# --- reports --------------------------------------------------------------------------------


def _check(check: Check) -> SignatureCheck:
    return SignatureCheck(name=check.name, outcome=check.outcome, detail=check.detail)  # type: ignore[arg-type]


def report_of(sig: SignatureResult) -> SignatureReport:
    report = SignatureReport(
        file_name=sig.file_name,
        index=sig.index,
        signer_kind=sig.signer_kind,  # type: ignore[arg-type]
        signer_subject=sig.subject,
        valid=sig.valid,
        reason=sig.reason,
        format=sig.format,
        issuer_subject=sig.issuer,
        certificate_serial=sig.serial,
        trust_anchor=sig.trust_anchor,
        signer_uid=sig.uid,
        checks=[_check(c) for c in sig.checks],
    )
    if sig.signing_time is not None:
        report.signing_time.FromDatetime(sig.signing_time.astimezone(UTC))
    return report


def _verdict(decision: Decision) -> Verdict.ValueType:
    return Verdict.VERDICT_ACCEPTED if decision.accepted else Verdict.VERDICT_REJECTED


# --- attachments from document-service -----------------------------------------------------


class AttachmentFetcher:
    """Streams an attachment's bytes from document-service and checks them against the ref."""

    def __init__(self, channel: aio.Channel, *, timeout: float, max_bytes: int) -> None:
        self._stub = DocumentServiceStub(channel)
        self._timeout = timeout
        self._max_bytes = max_bytes

    async def fetch(self, document_id: str, ref: AttachmentRef) -> tuple[bytes | None, str]:
        """(bytes, "") or (None, why the document must be rejected); raises
        TransientEventError while document-service cannot answer."""
        if ref.size_bytes > self._max_bytes:
            return None, (
                f"{ref.name}: {ref.size_bytes} bytes, more than the {self._max_bytes} verified"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        delay = 0.2
        while True:
            try:
                return await self._once(document_id, ref, max(deadline - loop.time(), 1.0))
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    return None, f"{ref.name}: document-service has no such attachment"
                if code in RETRYABLE and loop.time() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                raise TransientEventError(
                    f"fetching attachment {ref.attachment_id} of {document_id} from"
                    f" document-service: {code.name}: {exc.details()}"
                ) from exc

    async def _once(
        self, document_id: str, ref: AttachmentRef, timeout: float
    ) -> tuple[bytes | None, str]:
        metadata = ((UNIT_HEADER, IDENTITY), (TRACE_HEADER, current_trace_id() or "-"))
        digest = hashlib.sha256()
        parts: list[bytes] = []
        size = 0
        call = self._stub.GetAttachment(
            doc_pb.GetAttachmentRequest(document_id=document_id, attachment_id=ref.attachment_id),
            metadata=metadata,
            timeout=timeout,
        )
        async for message in call:
            if message.WhichOneof("part") != "chunk":
                continue
            size += len(message.chunk)
            if size > self._max_bytes:
                call.cancel()
                return None, f"{ref.name}: more than the {self._max_bytes} bytes verified"
            digest.update(message.chunk)
            parts.append(message.chunk)
        if size != ref.size_bytes or digest.hexdigest() != ref.sha256:
            return None, (
                f"{ref.name}: the bytes fetched ({size} bytes, SHA-256 {digest.hexdigest()})"
                f" do not match the submitted attachment ({ref.size_bytes} bytes, SHA-256"
                f" {ref.sha256})"
            )
        return b"".join(parts), ""


# --- the flow -------------------------------------------------------------------------------


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
        db: AsyncDatabase[Doc],
        producer: EventProducer,
        topics: Topics,
        verifier: Verifier,
        fetcher: AttachmentFetcher,
    ) -> None:
        self.verifications = db["verifications"]
        self._producer = producer
        self._topics = topics
        self.verifier = verifier
        self._fetcher = fetcher

    async def on_document(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if not carries(envelope, DocumentSubmitted):
            return  # other document events are not signature-service's business
        submitted = unpack(envelope, DocumentSubmitted)
        _check_event(submitted)
        document = submitted.document
        decision = await self._decide(submitted)
        verified = DocumentVerified(
            document=document,
            recipients=submitted.recipients,
            verdict=_verdict(decision),
            reason=decision.reason,
            personal_signature_valid=decision.personal_valid,
            organisation_signature_valid=decision.organisation_valid,
            signatures=[report_of(s) for s in decision.signatures],
            failed_rule=decision.failed_rule,
        )
        await self.verifications.update_one(
            {"_id": document.document_id},
            {
                "$set": {
                    "verified": verified.SerializeToString(),
                    "verified_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )
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
                return Decision(False, problem, failed_rule="readable-files")
            files.append((ref.name, data))
        return await self.verifier.verify(
            files, document_type=submitted.document.document_type, direction="outgoing"
        )


# --- the API --------------------------------------------------------------------------------


def _anchor(cert: Any, source: str) -> pb.TrustAnchor:
    anchor = pb.TrustAnchor(
        subject=rfc4514(cert.subject), sha256=fingerprint(cert), source=source, pem=to_pem(cert)
    )
    anchor.not_before.FromDatetime(cert.not_valid_before.astimezone(UTC))
    anchor.not_after.FromDatetime(cert.not_valid_after.astimezone(UTC))
    return anchor


def _certificate_response(result: CertificateResult) -> pb.ValidateCertificateResponse:
    failed = [c for c in result.checks if c.outcome == 2]
    response = pb.ValidateCertificateResponse(
        valid=not failed,
        reason=f"{failed[0].name}: {failed[0].detail}" if failed else "",
        signer_kind=result.signer_kind,  # type: ignore[arg-type]
        subject=result.subject,
        issuer=result.issuer,
        serial=result.serial,
        trust_anchor=result.trust_anchor,
        chain=result.chain,
        checks=[_check(c) for c in result.checks],
        signer_uid=result.uid,
    )
    response.not_before.FromDatetime(result.not_before.astimezone(UTC))
    response.not_after.FromDatetime(result.not_after.astimezone(UTC))
    return response


class SignatureServicer(SignatureServiceServicer):
    def __init__(
        self,
        flow: VerificationFlow,
        trust: TrustStore,
        *,
        operators: tuple[str, ...],
        max_file_bytes: int,
    ) -> None:
        self._flow = flow
        self._trust = trust
        self._verifier = flow.verifier
        self._operators = set(operators)
        self._max_file_bytes = max_file_bytes

    async def GetVerification(
        self, request: pb.GetVerificationRequest, context: Context
    ) -> pb.GetVerificationResponse:
        if not request.document_id:
            raise InvalidArgument([FieldViolation("document_id", "is required")])
        found = await self._flow.verifications.find_one({"_id": request.document_id})
        if found is None:
            raise NotFound(f"document_id: no verification for {request.document_id!r} yet")
        if "verified" in found:
            verified = DocumentVerified.FromString(bytes(found["verified"]))
        else:  # recorded by the pass-through version: verdict and reason only
            verified = DocumentVerified(
                verdict=found.get("verdict", 0), reason=found.get("reason", "")
            )
        response = pb.GetVerificationResponse(
            document_id=request.document_id,
            verdict=verified.verdict,
            reason=verified.reason,
            failed_rule=verified.failed_rule,
            personal_signature_valid=verified.personal_signature_valid,
            organisation_signature_valid=verified.organisation_signature_valid,
            signatures=verified.signatures,
        )
        response.verified_at.FromDatetime(found["verified_at"])
        return response

    async def VerifyDocument(
        self, request: pb.VerifyDocumentRequest, context: Context
    ) -> pb.VerifyDocumentResponse:
        problems = []
        if not request.files:
            problems.append(FieldViolation("files", "at least one file (the main document)"))
        names = set()
        for i, item in enumerate(request.files):
            if not item.name.strip():
                problems.append(FieldViolation(f"files[{i}].name", "is required"))
            elif item.name in names:
                problems.append(FieldViolation(f"files[{i}].name", f"{item.name!r} twice"))
            names.add(item.name)
            if not item.content:
                problems.append(FieldViolation(f"files[{i}].content", "is empty"))
            elif len(item.content) > self._max_file_bytes:
                problems.append(
                    FieldViolation(
                        f"files[{i}].content",
                        f"{len(item.content)} bytes, more than {self._max_file_bytes}",
                    )
                )
        if request.direction not in DIRECTIONS:
            problems.append(FieldViolation("direction", f"unknown value {request.direction}"))
        if problems:
            raise InvalidArgument(problems)
        files = [(item.name, item.content) for item in request.files]
        results = await self._verifier.check_files(files)
        decision = self._verifier.policy.decide(
            results, request.document_type, DIRECTIONS[request.direction]
        )
        return pb.VerifyDocumentResponse(
            verdict=_verdict(decision),
            reason=decision.reason,
            failed_rule=decision.failed_rule,
            personal_signature_valid=decision.personal_valid,
            organisation_signature_valid=decision.organisation_valid,
            signatures=[report_of(s) for s in decision.signatures],
            file_problems=[
                pb.FileProblem(file_name=f.name, problem=f.problem) for f in results if f.problem
            ],
            policy_rule=decision.rule,
        )

    async def ValidateCertificate(
        self, request: pb.ValidateCertificateRequest, context: Context
    ) -> pb.ValidateCertificateResponse:
        problems = []
        der = b""
        try:
            der = inspect_certificate(request.certificate)
        except ValueError as exc:
            problems.append(FieldViolation("certificate", f"not a DER or PEM certificate: {exc}"))
        intermediates = []
        for i, item in enumerate(request.intermediates):
            try:
                intermediates.append(inspect_certificate(item))
            except ValueError as exc:
                problems.append(FieldViolation(f"intermediates[{i}]", f"not a certificate: {exc}"))
        at = datetime.now(UTC)
        if request.HasField("at"):
            try:
                at = request.at.ToDatetime(UTC)
            except (ValueError, OverflowError) as exc:  # seconds or nanos out of range
                problems.append(FieldViolation("at", f"not a valid time: {exc}"))
        if problems:
            raise InvalidArgument(problems)
        result = await self._verifier.validate_certificate(der, intermediates, at)
        return _certificate_response(result)

    async def ListTrustAnchors(
        self, request: pb.ListTrustAnchorsRequest, context: Context
    ) -> pb.ListTrustAnchorsResponse:
        trust = self._trust
        return pb.ListTrustAnchorsResponse(
            anchors=[_anchor(c, s) for c, s in trust.anchors],
            intermediates=[_anchor(c, s) for c, s in trust.intermediates],
        )

    async def AddTrustAnchor(
        self, request: pb.AddTrustAnchorRequest, context: Context
    ) -> pb.AddTrustAnchorResponse:
        who = caller_unit()
        if who not in self._operators:
            raise PermissionDenied(
                f"{who} may not add trust anchors (LIENTHONG_SIGNATURE_OPERATORS)"
            )
        try:
            certs = parse_certificates(request.certificate)
        except ValueError as exc:
            raise InvalidArgument(
                [FieldViolation("certificate", f"not a DER or PEM certificate: {exc}")]
            ) from exc
        if len(certs) != 1:
            raise InvalidArgument(
                [FieldViolation("certificate", f"exactly one certificate, got {len(certs)}")]
            )
        cert = certs[0]
        if not is_self_signed_ca(cert):
            raise InvalidArgument(
                [FieldViolation("certificate", "a trust anchor is a self-signed CA certificate")]
            )
        added = await self._trust.add(cert, who)
        log.warning("trust_anchor_added", subject=rfc4514(cert.subject), by=who, added=added)
        return pb.AddTrustAnchorResponse(anchor=_anchor(cert, f"operator:{who}"), added=added)
