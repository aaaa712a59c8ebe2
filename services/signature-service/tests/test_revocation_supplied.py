"""Revocation as documented in every mode (issue #17): a CA certificate that names no
revocation location is checked against the operator's supplied CRLs in `require` mode too,
otherwise it is INDETERMINATE (CERTIFICATE_NO_REVOCATION_INFORMATION: nothing to fetch) with
the mode's consequence; ValidateCertificate and
VerifyDocument go the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from lienthong_testing.pki import LocalPki, make_pdf, sign_pdf
from signature_service.engine import CHECK_FAILED, CHECK_INDETERMINATE, CHECK_PASSED

NO_INFO = "CERTIFICATE_NO_REVOCATION_INFORMATION"


@pytest.fixture(scope="module")
def silent_pdf(pki: LocalPki) -> list[tuple[str, bytes]]:
    return [("sao-y.pdf", sign_pdf(make_pdf(), pki.signers["silent-ca"]))]


def _der(pki: LocalPki, which: str) -> bytes:
    if which == "ca":
        assert pki.silent_ca_file is not None
        from asn1crypto import pem

        _, _, der = pem.unarmor(pki.silent_ca_file.read_bytes())
        return bytes(der)
    return pki.signers["silent-ca"].cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("mode", "supplied", "accepted", "outcome", "sub"),
    [
        pytest.param("require", True, True, CHECK_PASSED, "", id="require-with-supplied-crl"),
        pytest.param("require", False, False, CHECK_FAILED, NO_INFO, id="require-without"),
        pytest.param(
            "soft-fail", False, True, CHECK_INDETERMINATE, NO_INFO, id="soft-fail-without"
        ),
    ],
)
async def test_a_ca_without_revocation_location_per_mode_and_both_rpcs_agree(
    make_verifier: Any,
    pki: LocalPki,
    silent_pdf: list[tuple[str, bytes]],
    mode: str,
    supplied: bool,
    accepted: bool,
    outcome: int,
    sub: str,
) -> None:
    folder = pki.folder / "supplied" if supplied else pki.folder / "nothing-supplied"
    folder.mkdir(exist_ok=True)
    checker = make_verifier(mode=mode, supplied=folder)
    decision = await checker.verify(silent_pdf, document_type="SY", direction="outgoing")
    assert decision.accepted is accepted, decision.reason
    (sig,) = decision.signatures
    revocation = next(c for c in sig.checks if c.name == "revocation")
    assert revocation.outcome == outcome, revocation
    assert sig.sub_indication == sub
    if supplied:
        assert "supplied in" in revocation.detail
    else:
        assert "names no OCSP responder and no CRL" in revocation.detail
        assert "Test Public CA (no CRL location)" in revocation.detail
        assert revocation.technical == NO_INFO
        consequence = {
            "require": "revocation mode require: a signature whose certificate status is unknown"
            " is not accepted",
            "soft-fail": "revocation mode soft-fail: accepted with the status unknown",
        }[mode]
        assert consequence in revocation.detail
        assert f"chế độ {mode}" in revocation.detail_vi
    certificate = await checker.validate_certificate(
        _der(pki, "signer"), [_der(pki, "ca")], datetime.now(UTC)
    )
    assert (certificate.valid, certificate.sub_indication) == (sig.valid, sig.sub_indication)
    assert [(c.name, c.outcome) for c in certificate.checks] == [
        (c.name, c.outcome) for c in sig.checks if c.name not in ("integrity", "coverage")
    ]
