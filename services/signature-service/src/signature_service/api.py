"""signature-service's API: validate the request, ask the verifier, the trust store or the
store, map the answer to protobuf."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from asn1crypto import x509
from grpc import aio

from lienthong.common.v1.common_pb2 import AttachmentRef
from lienthong.events.v1.events_pb2 import DocumentVerified
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceServicer
from lienthong_kit.authz import Kind, current_identity
from lienthong_kit.context import caller_unit
from lienthong_kit.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from lienthong_kit.logs import get_logger
from signature_service.attachments import AttachmentFetcher, UploadMissingError
from signature_service.engine import CertificateResult, inspect_certificate
from signature_service.operator_actions import TrustAnnouncer
from signature_service.pki import (
    fingerprint,
    is_self_signed_ca,
    parse_certificates,
    rfc4514,
    to_pem,
)
from signature_service.policy import Decision
from signature_service.reports import check_of, indication_of, recorded_view, verification_view
from signature_service.store import SignatureStore
from signature_service.trust import TrustStore
from signature_service.verifier import Verifier

__all__ = ["SignatureServicer"]

DIRECTIONS = {
    pb.Direction.DIRECTION_UNSPECIFIED: "outgoing",
    pb.Direction.DIRECTION_OUTGOING: "outgoing",
    pb.Direction.DIRECTION_INCOMING: "incoming",
}

# VerifyAttachments: as many as SubmitDocument takes, ids as long as it takes
MAX_ATTACHMENTS = 50
MAX_ID = 64
# a notation such as "QĐ" or "CV"; document-service checks it against Decree 30/2020's list
MAX_DOCUMENT_TYPE = 16

# UNSPECIFIED stays accepted while callers (the CLI) learn to mark the hierarchy
HIERARCHIES = set(pb.Hierarchy.values())

log = get_logger(__name__)
Context = aio.ServicerContext[Any, Any]


def _anchor(
    cert: x509.Certificate, source: str, hierarchy: int = 0, *, intermediate: bool = False
) -> pb.TrustAnchor:
    anchor = pb.TrustAnchor(
        subject=rfc4514(cert.subject),
        sha256=fingerprint(cert),
        source=source,
        pem=to_pem(cert),
        hierarchy=hierarchy,  # type: ignore[arg-type]
        intermediate=intermediate,
    )
    anchor.not_before.FromDatetime(cert.not_valid_before.astimezone(UTC))
    anchor.not_after.FromDatetime(cert.not_valid_after.astimezone(UTC))
    return anchor


def _certificate_response(result: CertificateResult) -> pb.ValidateCertificateResponse:
    response = pb.ValidateCertificateResponse(
        valid=result.valid,
        reason=result.reason,
        signer_kind=result.signer_kind,  # type: ignore[arg-type]
        subject=result.subject,
        issuer=result.issuer,
        serial=result.serial,
        trust_anchor=result.trust_anchor,
        chain=result.chain,
        checks=[check_of(c) for c in result.checks],
        signer_uid=result.uid,
        indication=indication_of(result.indication),
        sub_indication=result.sub_indication,
        reason_vi=result.reason_vi,
    )
    response.not_before.FromDatetime(result.not_before.astimezone(UTC))
    response.not_after.FromDatetime(result.not_after.astimezone(UTC))
    return response


class SignatureServicer(SignatureServiceServicer):
    def __init__(
        self,
        store: SignatureStore,
        verifier: Verifier,
        trust: TrustStore,
        *,
        max_file_bytes: int,
        max_document_bytes: int,
        announcer: TrustAnnouncer,
        fetcher: AttachmentFetcher,
    ) -> None:
        self._max_document_bytes = max_document_bytes
        self._announcer = announcer
        self._fetcher = fetcher
        self._store = store
        self._trust = trust
        self._verifier = verifier
        self._max_file_bytes = max_file_bytes

    async def GetVerification(
        self, request: pb.GetVerificationRequest, context: Context
    ) -> pb.GetVerificationResponse:
        if not request.document_id:
            raise InvalidArgument([FieldViolation("document_id", "is required")])
        found = await self._store.verification(request.document_id)
        if found is None:
            raise NotFound(f"document_id: no verification for {request.document_id!r} yet")
        caller = current_identity()
        if caller.kind is Kind.UNIT and not _party(caller.name, found.verified):
            raise PermissionDenied(
                f"{caller.name} is neither the sender of {request.document_id} nor a recipient"
                " it names (a recipient reached by scope reads the verdict in GetDocument)",
                reason="NOT_A_PARTY",
            )
        response = pb.GetVerificationResponse(
            document_id=found.document_id, **recorded_view(found.verified)
        )
        response.verified_at.FromDatetime(found.verified_at)
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
        total = sum(len(item.content) for item in request.files)
        if total > self._max_document_bytes:
            problems.append(
                FieldViolation(
                    "files",
                    f"{total} bytes in all, more than the {self._max_document_bytes} verified for"
                    " one document",
                )
            )
        if len(request.document_type) > MAX_DOCUMENT_TYPE:
            problems.append(
                FieldViolation("document_type", f"at most {MAX_DOCUMENT_TYPE} characters")
            )
        if request.direction not in DIRECTIONS:
            problems.append(FieldViolation("direction", f"unknown value {request.direction}"))
        if problems:
            raise InvalidArgument(problems)
        files: list[tuple[str, bytes | Path]] = [
            (item.name, item.content) for item in request.files
        ]
        results = await self._verifier.check_files(files, precheck=True)
        decision = self._verifier.policy.decide(
            results, request.document_type, DIRECTIONS[request.direction]
        )
        return pb.VerifyDocumentResponse(
            **verification_view(decision),
            file_problems=[
                pb.FileProblem(file_name=f.name, problem=f.problem) for f in results if f.problem
            ],
            policy_rule=decision.rule,
        )

    async def VerifyAttachments(
        self, request: pb.VerifyAttachmentsRequest, context: Context
    ) -> pb.VerifyAttachmentsResponse:
        ids = list(request.attachment_ids)
        problems = []
        if not ids:
            problems.append(FieldViolation("attachment_ids", "at least one (the main document)"))
        elif len(ids) > MAX_ATTACHMENTS:
            problems.append(FieldViolation("attachment_ids", f"at most {MAX_ATTACHMENTS} entries"))
        else:
            for i, attachment_id in enumerate(ids):
                if not attachment_id.strip():
                    problems.append(FieldViolation(f"attachment_ids[{i}]", "is required"))
                elif len(attachment_id) > MAX_ID:
                    problems.append(
                        FieldViolation(f"attachment_ids[{i}]", f"at most {MAX_ID} characters")
                    )
                elif attachment_id in ids[:i]:
                    problems.append(FieldViolation(f"attachment_ids[{i}]", "named twice"))
        if len(request.document_type) > MAX_DOCUMENT_TYPE:
            problems.append(
                FieldViolation("document_type", f"at most {MAX_DOCUMENT_TYPE} characters")
            )
        if request.direction not in DIRECTIONS:
            problems.append(FieldViolation("direction", f"unknown value {request.direction}"))
        if problems:
            raise InvalidArgument(problems)
        unit = caller_unit()
        refs: list[AttachmentRef] = []
        files: list[tuple[str, bytes | Path]] = []
        unreadable = ""
        for i, attachment_id in enumerate(ids):
            try:
                ref, data, problem = await self._fetcher.fetch_upload(unit, attachment_id)
            except UploadMissingError as exc:
                raise NotFound(
                    f"attachment_ids[{i}]: {unit} has no upload {attachment_id!r} (another"
                    f" unit's, or removed unused): {exc}"
                ) from exc
            except grpc.aio.AioRpcError as exc:
                raise Unavailable(
                    f"document-service did not hand over attachment {attachment_id}:"
                    f" {exc.code().name}: {exc.details()}"
                ) from exc
            if ref.name in (seen.name for seen in refs):
                raise InvalidArgument(
                    [FieldViolation(f"attachment_ids[{i}]", f"a second file named {ref.name!r}")]
                )
            refs.append(ref)
            if data is None:
                unreadable = unreadable or problem
            else:
                files.append((ref.name, data))
        if unreadable:  # as a submitted document with that file is rejected
            decision = Decision(False, unreadable, failed_rule="readable-files")
            verification = pb.VerifyDocumentResponse(**verification_view(decision))
            return pb.VerifyAttachmentsResponse(verification=verification, attachments=refs)
        # a pre-check: on the pre-check pool, never ahead of submitted documents
        results = await self._verifier.check_files(files, precheck=True)
        decision = self._verifier.policy.decide(
            results, request.document_type, DIRECTIONS[request.direction]
        )
        verification = pb.VerifyDocumentResponse(
            **verification_view(decision),
            file_problems=[
                pb.FileProblem(file_name=f.name, problem=f.problem) for f in results if f.problem
            ],
            policy_rule=decision.rule,
        )
        return pb.VerifyAttachmentsResponse(verification=verification, attachments=refs)

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
        marks = trust.hierarchies
        return pb.ListTrustAnchorsResponse(
            anchors=[_anchor(c, s, marks.get(fingerprint(c), 0)) for c, s in trust.anchors],
            intermediates=[
                _anchor(c, s, marks.get(fingerprint(c), 0), intermediate=True)
                for c, s in trust.intermediates
            ],
        )

    async def AddTrustAnchor(
        self, request: pb.AddTrustAnchorRequest, context: Context
    ) -> pb.AddTrustAnchorResponse:
        who = current_identity().name  # the access table admits trust administrators only
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
        if not cert.ca:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "certificate",
                        "not a CA certificate (basicConstraints cA is not set): a trust anchor"
                        " or an intermediate is a CA certificate",
                    )
                ]
            )
        if request.hierarchy not in HIERARCHIES:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "hierarchy",
                        f"{request.hierarchy} is not HIERARCHY_PUBLIC_SERVICE (Ban Cơ yếu Chính"
                        " phủ) or HIERARCHY_PUBLIC (public CAs under the national root)",
                    )
                ]
            )
        intermediate = not is_self_signed_ca(cert)
        added = await self._trust.add(cert, who, request.hierarchy)
        if added:  # the audit chains it with who did it (document-service's audit consumer)
            await self._announcer.anchor_added(cert, who)
        log.warning(
            "trust_anchor_added",
            subject=rfc4514(cert.subject),
            by=who,
            added=added,
            intermediate=intermediate,
            hierarchy=pb.Hierarchy.Name(request.hierarchy),
        )
        anchor = _anchor(cert, f"operator:{who}", request.hierarchy, intermediate=intermediate)
        return pb.AddTrustAnchorResponse(anchor=anchor, added=added)

    async def RemoveTrustAnchor(
        self, request: pb.RemoveTrustAnchorRequest, context: Context
    ) -> pb.RemoveTrustAnchorResponse:
        who = current_identity().name  # the access table admits trust administrators only
        sha256 = request.sha256.strip().lower()
        if len(sha256) != 64 or any(ch not in "0123456789abcdef" for ch in sha256):
            raise InvalidArgument(
                [FieldViolation("sha256", "64 hex digits: TrustAnchor.sha256 of ListTrustAnchors")]
            )
        trust = self._trust
        subject = next(
            (
                rfc4514(c.subject)
                for c, _ in trust.anchors + trust.intermediates
                if fingerprint(c) == sha256
            ),
            "",
        )
        removed = await trust.remove(sha256)
        if not removed and subject:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "sha256",
                        f"{subject} comes from the configuration files: remove it there",
                    )
                ]
            )
        if removed:
            await self._announcer.anchor_removed(sha256, subject, who)
        log.warning("trust_anchor_removed", sha256=sha256, subject=subject, by=who, removed=removed)
        return pb.RemoveTrustAnchorResponse(removed=removed)


def _party(unit: str, verified: DocumentVerified) -> bool:
    return unit == verified.document.sender_code or unit in verified.recipients.unit_codes
