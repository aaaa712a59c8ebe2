"""The report as clients receive it (issue #17), over gRPC: per signature the ETSI EN 319 102-1
indication and sub-indication, per check its outcome with the reason in Vietnamese and English
and the library's words apart; a check that did not run never reads PASSED; each signature's
details name only its own certificates; a certificate with no revocation location and nothing
supplied is INDETERMINATE (CERTIFICATE_NO_REVOCATION_INFORMATION), one whose responder cannot
be reached INDETERMINATE (TRY_LATER), each with the mode's consequence."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from lienthong.common.v1.common_pb2 import CheckOutcome, Indication, SignatureReport, Verdict
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_testing.callers import as_unit, default_identity
from lienthong_testing.pki import LocalPki, make_pdf, sign_pdf

AS_A_UNIT = default_identity(as_unit("000.00.00.H23"))

PASSED = CheckOutcome.CHECK_OUTCOME_PASSED
FAILED = CheckOutcome.CHECK_OUTCOME_FAILED
SKIPPED = CheckOutcome.CHECK_OUTCOME_SKIPPED
NO_INFO = "CERTIFICATE_NO_REVOCATION_INFORMATION"

# sub-indication -> the checks validation did not pass through (never PASSED under it)
NOT_REACHED = {
    "HASH_FAILURE": {"chain", "validity", "key-usage", "revocation"},
    "SIG_CRYPTO_FAILURE": {"chain", "validity", "key-usage", "revocation"},
    "NO_CERTIFICATE_CHAIN_FOUND": {"chain", "validity", "key-usage", "revocation"},
    "OUT_OF_BOUNDS_NO_POE": {"validity", "key-usage", "revocation"},
    "EXPIRED": {"validity", "key-usage", "revocation"},
    "NOT_YET_VALID": {"validity", "key-usage", "revocation"},
    "REVOKED_NO_POE": {"key-usage", "revocation"},
    "REVOKED_CA_NO_POE": {"key-usage", "revocation"},
    "REVOKED": {"key-usage", "revocation"},
    "TRY_LATER": {"revocation"},
    NO_INFO: {"revocation"},
    "CHAIN_CONSTRAINTS_FAILURE": {"key-usage"},
    "FORMAT_FAILURE": {"coverage"},
}


def _files(docs: dict[str, Any], name: str) -> list[pb.DocumentFile]:
    return [pb.DocumentFile(name=n, content=c) for n, c in docs[name]]


def _texts(sig: SignatureReport) -> list[str]:
    return [t for c in sig.checks for t in (c.detail, c.detail_vi, c.technical)] + [
        sig.reason,
        sig.reason_vi,
    ]


async def test_every_fixture_reports_only_checks_that_ran_and_only_its_own_certificates(
    signature_stub: SignatureServiceStub, docs: dict[str, Any]
) -> None:
    signatures_seen = 0
    for fixture in sorted(docs):
        reply = await signature_stub.VerifyDocument(
            pb.VerifyDocumentRequest(files=_files(docs, fixture), document_type="QĐ")
        )
        assert reply.reason, fixture
        assert reply.reason_vi, fixture
        for sig in reply.signatures:
            signatures_seen += 1
            where = (fixture, sig.file_name, sig.index)
            assert sig.indication != Indication.INDICATION_UNSPECIFIED, where
            outcomes = {c.name: c.outcome for c in sig.checks}
            if sig.indication == Indication.INDICATION_TOTAL_PASSED:
                assert sig.sub_indication == "", where
                assert set(outcomes.values()) == {PASSED}, (where, sig.checks)
            else:
                assert sig.sub_indication, where
                not_reached = NOT_REACHED[sig.sub_indication]
                assert not any(outcomes.get(n) == PASSED for n in not_reached), (where, sig.checks)
            assert sig.valid == (sig.reason == "") == (sig.reason_vi == ""), where
            for check in sig.checks:
                assert check.detail, (where, check)
                assert check.detail_vi, (where, check)
                if check.outcome == SKIPPED:
                    assert check.detail.startswith("not run: "), (where, check)
                    assert check.detail_vi.startswith("không kiểm tra: "), (where, check)
            others = {s.signer_subject for s in reply.signatures} - {sig.signer_subject, ""}
            for text in _texts(sig):
                for other in others:
                    # a subject is "CN=...,O=..."; its first attribute names the certificate
                    assert other.split(",")[0] not in text, (where, other, text)
    assert signatures_seen >= 25  # every fixture's signatures were looked at


@pytest.fixture(scope="module")
def silent(pki: LocalPki) -> tuple[list[pb.DocumentFile], bytes, bytes]:
    """A document signed under a CA that names no revocation location, the signer's and the
    CA's certificates."""
    signer = pki.signers["silent-ca"]
    pdf = sign_pdf(make_pdf(), signer)
    assert pki.silent_ca_file is not None
    return (
        [pb.DocumentFile(name="sao-y.pdf", content=pdf)],
        signer.cert.public_bytes(serialization.Encoding.PEM),
        pki.silent_ca_file.read_bytes(),
    )


@pytest.mark.parametrize(
    ("mode", "accepted", "outcome", "consequence"),
    [
        pytest.param(
            "require",
            False,
            FAILED,
            "revocation mode require: a signature whose certificate status is unknown is not"
            " accepted",
            id="require",
        ),
        pytest.param(
            "soft-fail",
            True,
            CheckOutcome.CHECK_OUTCOME_INDETERMINATE,
            "revocation mode soft-fail: accepted with the status unknown",
            id="soft-fail",
        ),
    ],
)
async def test_no_revocation_location_and_nothing_supplied_is_no_revocation_information(
    start_signature: Any,
    silent: tuple[list[pb.DocumentFile], bytes, bytes],
    mode: str,
    accepted: bool,
    outcome: int,
    consequence: str,
) -> None:
    files, signer, ca = silent
    app = await start_signature(LIENTHONG_SIGNATURE_REVOCATION_MODE=mode)
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.grpc_port}", interceptors=AS_A_UNIT
    ) as channel:
        stub = SignatureServiceStub(channel)
        reply = await stub.VerifyDocument(pb.VerifyDocumentRequest(files=files, document_type="SY"))
        certificate = await stub.ValidateCertificate(
            pb.ValidateCertificateRequest(certificate=signer, intermediates=[ca])
        )
    assert (reply.verdict == Verdict.VERDICT_ACCEPTED) is accepted, reply.reason
    (sig,) = reply.signatures
    assert (sig.indication, sig.sub_indication) == (Indication.INDICATION_INDETERMINATE, NO_INFO)
    revocation = next(c for c in sig.checks if c.name == "revocation")
    assert revocation.outcome == outcome
    assert revocation.technical == NO_INFO
    assert "Test Public CA (no CRL location)" in revocation.detail
    assert "names no OCSP responder and no CRL" in revocation.detail
    assert consequence in revocation.detail
    assert f"chế độ {mode}" in revocation.detail_vi
    # the certificate on its own goes the same way
    assert (certificate.indication, certificate.sub_indication) == (
        Indication.INDICATION_INDETERMINATE,
        NO_INFO,
    )
    assert certificate.valid is accepted
    assert [(c.name, c.outcome) for c in certificate.checks] == [
        (c.name, c.outcome) for c in sig.checks if c.name not in ("integrity", "coverage")
    ]
    if not accepted:
        assert certificate.reason.startswith("revocation: status unknown")
        assert certificate.reason_vi.startswith("revocation: không xác định được trạng thái")


async def test_an_unreachable_responder_is_try_later_on_both_rpcs(
    signature_stub: SignatureServiceStub, docs: dict[str, Any], pki: LocalPki
) -> None:
    reply = await signature_stub.VerifyDocument(
        pb.VerifyDocumentRequest(files=_files(docs, "unreachable-ocsp"), document_type="QĐ")
    )
    certificate = await signature_stub.ValidateCertificate(
        pb.ValidateCertificateRequest(
            certificate=pki.signers["unreachable-ocsp"].cert_file.read_bytes()
        )
    )
    sig = reply.signatures[0]
    assert sig.indication == Indication.INDICATION_INDETERMINATE
    assert sig.sub_indication == "TRY_LATER"
    revocation = next(c for c in sig.checks if c.name == "revocation")
    assert (revocation.outcome, revocation.technical) == (FAILED, "TRY_LATER")
    assert "revocation mode require" in revocation.detail
    assert (certificate.indication, certificate.sub_indication) == (
        Indication.INDICATION_INDETERMINATE,
        "TRY_LATER",
    )
    assert not certificate.valid
