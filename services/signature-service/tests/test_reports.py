"""The verification view: a decision becomes the same verdict fields in the event, in
VerifyDocument's answer and, read back from the recorded event, in GetVerification's."""

from __future__ import annotations

from datetime import UTC, datetime

from lienthong.common.v1.common_pb2 import CheckOutcome, SignerKind, Verdict
from lienthong.events.v1.events_pb2 import DocumentVerified
from lienthong.signature.v1 import signature_service_pb2 as pb
from signature_service.engine import CHECK_FAILED, CHECK_PASSED, Check, SignatureResult
from signature_service.policy import Decision
from signature_service.reports import recorded_view, verification_view


def decision() -> Decision:
    signed = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    person = SignatureResult(
        "qd-15.pdf",
        0,
        "pades",
        signer_kind=1,
        subject="CN=Nguyễn Văn An",
        uid="CCCD:001085012345",
        signing_time=signed,
        checks=[Check("integrity", CHECK_PASSED, "intact")],
    )
    organisation = SignatureResult(
        "qd-15.pdf",
        1,
        "pades",
        signer_kind=2,
        checks=[Check("revocation", CHECK_FAILED, "the certificate was revoked")],
    )
    return Decision(
        False,
        "qd-15.pdf: signature 1 is not valid",
        failed_rule="signatures-valid",
        rule="*@*=person-then-organisation",
        personal_valid=True,
        organisation_valid=False,
        signatures=[person, organisation],
    )


def test_a_decision_reads_the_same_in_the_event_and_both_responses() -> None:
    view = verification_view(decision())
    event = DocumentVerified(**view)
    precheck = pb.VerifyDocumentResponse(**view)
    recorded = pb.GetVerificationResponse(document_id="doc-1", **recorded_view(event))

    assert event.verdict == Verdict.VERDICT_REJECTED
    assert (event.failed_rule, event.reason) == (
        "signatures-valid",
        "qd-15.pdf: signature 1 is not valid",
    )
    assert (event.personal_signature_valid, event.organisation_signature_valid) == (True, False)
    person, organisation = event.signatures
    assert person.signer_kind == SignerKind.SIGNER_KIND_PERSON
    assert person.signing_time.ToDatetime(UTC) == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert person.valid
    assert not organisation.valid
    assert organisation.reason == "revocation: the certificate was revoked"
    assert organisation.checks[0].outcome == CheckOutcome.CHECK_OUTCOME_FAILED
    for response in (precheck, recorded):
        assert response.verdict == event.verdict
        assert response.reason == event.reason
        assert response.failed_rule == event.failed_rule
        assert response.personal_signature_valid == event.personal_signature_valid
        assert response.organisation_signature_valid == event.organisation_signature_valid
        assert list(response.signatures) == list(event.signatures)
