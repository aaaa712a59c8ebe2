"""The verification view: how a verdict and its per-signature reports become protobuf, once
for the published event, VerifyDocument and GetVerification.

    DocumentVerified(document=..., **verification_view(decision))      # the event
    pb.VerifyDocumentResponse(**verification_view(decision), ...)       # a pre-check
    pb.GetVerificationResponse(**recorded_view(verified), ...)          # a recorded verdict
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import TypedDict, cast

from lienthong.common.v1.common_pb2 import Indication, SignatureCheck, SignatureReport, Verdict
from lienthong.events.v1.events_pb2 import DocumentVerified
from signature_service.engine import Check, SignatureResult
from signature_service.policy import Decision

__all__ = [
    "VerificationView",
    "check_of",
    "indication_of",
    "recorded_view",
    "report_of",
    "verification_view",
]

# the engine's ETSI EN 319 102-1 words -> lienthong.common.v1.Indication
INDICATIONS = {
    "TOTAL-PASSED": Indication.INDICATION_TOTAL_PASSED,
    "TOTAL-FAILED": Indication.INDICATION_TOTAL_FAILED,
    "INDETERMINATE": Indication.INDICATION_INDETERMINATE,
}


class VerificationView(TypedDict):
    """The verdict fields shared by document.verified and the RPCs' responses."""

    verdict: Verdict.ValueType
    reason: str
    reason_vi: str
    failed_rule: str
    personal_signature_valid: bool
    organisation_signature_valid: bool
    signatures: Iterable[SignatureReport]


def indication_of(words: str) -> Indication.ValueType:
    return INDICATIONS.get(words, Indication.INDICATION_UNSPECIFIED)


def check_of(check: Check) -> SignatureCheck:
    return SignatureCheck(
        name=check.name,
        outcome=check.outcome,  # type: ignore[arg-type]
        detail=check.detail,
        detail_vi=check.detail_vi,
        technical=check.technical,
    )


def report_of(sig: SignatureResult) -> SignatureReport:
    report = SignatureReport(
        file_name=sig.file_name,
        index=sig.index,
        signer_kind=sig.signer_kind,  # type: ignore[arg-type]
        signer_subject=sig.subject,
        valid=sig.valid,
        reason=sig.reason,
        reason_vi=sig.reason_vi,
        indication=indication_of(sig.indication),
        sub_indication=sig.sub_indication,
        format=sig.format,
        issuer_subject=sig.issuer,
        certificate_serial=sig.serial,
        trust_anchor=sig.trust_anchor,
        signer_uid=sig.uid,
        checks=[check_of(c) for c in sig.checks],
    )
    if sig.signing_time is not None:
        report.signing_time.FromDatetime(sig.signing_time.astimezone(UTC))
    return report


def verification_view(decision: Decision) -> VerificationView:
    return VerificationView(
        verdict=Verdict.VERDICT_ACCEPTED if decision.accepted else Verdict.VERDICT_REJECTED,
        reason=decision.reason,
        reason_vi=decision.reason_vi,
        failed_rule=decision.failed_rule,
        personal_signature_valid=decision.personal_valid,
        organisation_signature_valid=decision.organisation_valid,
        signatures=[report_of(s) for s in decision.signatures],
    )


def recorded_view(verified: DocumentVerified) -> VerificationView:
    """The view a recorded document.verified carries (the event has every field of it)."""
    return cast(
        VerificationView,
        {name: getattr(verified, name) for name in VerificationView.__required_keys__},
    )
