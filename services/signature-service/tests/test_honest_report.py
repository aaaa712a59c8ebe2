"""The report says what was checked and nothing else (issue #17): a check validation never
reached is NOT RUN, never PASSED; each signature carries its ETSI EN 319 102-1 indication;
every detail belongs to its own signature; reasons in Vietnamese and English; bytes or
revisions no signature covers are refused; an unreadable file is refused even when
unsigned documents are accepted."""

from __future__ import annotations

import asyncio
from io import BytesIO
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from lienthong_testing.pki import make_pdf, sign_pdf
from signature_service.engine import CHECK_FAILED, CHECK_PASSED, CHECK_SKIPPED, SignatureResult

P, F, N = CHECK_PASSED, CHECK_FAILED, CHECK_SKIPPED
TRUST = ("chain", "validity", "key-usage", "revocation")

# fixture -> (signature index, its trust checks' outcomes, indication, sub-indication)
EXPECTED = {
    "person-then-organisation": (0, (P, P, P, P), "TOTAL-PASSED", ""),
    "modified-after-signing": (0, (N, N, N, N), "TOTAL-FAILED", "HASH_FAILURE"),
    "changed-in-later-revision": (0, (P, P, P, P), "TOTAL-FAILED", "FORMAT_FAILURE"),
    "revoked-signer": (0, (P, P, N, F), "INDETERMINATE", "REVOKED_NO_POE"),
    "expired-signer": (0, (P, F, N, N), "INDETERMINATE", "OUT_OF_BOUNDS_NO_POE"),
    "wrong-key-usage": (0, (P, P, F, P), "INDETERMINATE", "CHAIN_CONSTRAINTS_FAILURE"),
    "unknown-root": (1, (F, N, N, N), "INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND"),
    "unreachable-ocsp": (0, (P, P, N, F), "INDETERMINATE", "TRY_LATER"),
    "cms-signature-over-other-bytes": (2, (N, N, N, N), "TOTAL-FAILED", "HASH_FAILURE"),
}


def _signatures(decision: Any) -> list[SignatureResult]:
    return list(decision.signatures)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
async def test_each_check_says_whether_it_ran_and_the_etsi_indication(
    make_verifier: Any, docs: dict[str, Any], fixture: str
) -> None:
    index, outcomes, indication, sub = EXPECTED[fixture]
    decision = await make_verifier().verify(docs[fixture], document_type="QĐ", direction="outgoing")
    sig = _signatures(decision)[index]
    by_name = {c.name: c for c in sig.checks}
    assert tuple(by_name[n].outcome for n in TRUST) == outcomes, sig.checks
    assert (sig.indication, sig.sub_indication) == (indication, sub)
    for check in sig.checks:
        if check.outcome == CHECK_SKIPPED:
            assert check.detail.startswith("not run: "), check
            assert check.detail_vi.startswith("không kiểm tra: "), check
        assert check.detail_vi, check  # every check reads in Vietnamese too


async def test_every_fixture_reports_only_its_own_certificates(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    for fixture, files in docs.items():
        decision = await make_verifier().verify(files, document_type="QĐ", direction="outgoing")
        signatures = _signatures(decision)
        for sig in signatures:
            assert sig.indication, (fixture, sig)
            others = {s.subject for s in signatures if s.subject and s.subject != sig.subject}
            for check in sig.checks:
                for other in others:
                    assert other not in check.detail, (fixture, sig.index, check)


async def test_a_revocation_failure_names_only_its_own_signer(make_verifier: Any, pki: Any) -> None:
    # both signers' revocation status is unknown: each reason names its own certificate only
    first = await asyncio.to_thread(sign_pdf, make_pdf(), pki.signers["unreachable-ocsp"])
    pdf = await asyncio.to_thread(sign_pdf, first, pki.signers["unknown-root"])
    decision = await make_verifier(mode="soft-fail").verify(
        [("qd-15.pdf", pdf)], document_type="QĐ", direction="outgoing"
    )
    revocation = next(c for c in decision.signatures[0].checks if c.name == "revocation")
    assert "Hoàng Văn Em" in revocation.detail
    assert "Không Rõ" not in revocation.detail, revocation.detail


async def test_a_coverage_reason_reads_as_a_clerk_would_with_the_library_words_kept(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    decision = await make_verifier().verify(
        docs["changed-in-later-revision"], document_type="QĐ", direction="outgoing"
    )
    coverage = next(c for c in decision.signatures[0].checks if c.name == "coverage")
    assert coverage.outcome == CHECK_FAILED
    assert coverage.detail == "page 1 was changed after this signature"
    assert coverage.detail_vi == "trang 1 đã bị sửa sau khi ký"
    assert "IndirectObject" in coverage.technical
    assert "IndirectObject" not in coverage.detail


async def test_bytes_appended_after_the_last_signature_are_refused(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    ((name, signed),) = docs["person-then-organisation"]
    appended = signed + b"26 bytes nobody signed!!!\n"
    assert len(appended) - len(signed) == 26
    decision = await make_verifier().verify(
        [(name, appended)], document_type="QĐ", direction="outgoing"
    )
    assert not decision.accepted
    assert decision.failed_rule == "signatures-valid"
    for sig in decision.signatures:
        coverage = next(c for c in sig.checks if c.name == "coverage")
        assert coverage.outcome == CHECK_FAILED
        assert "bytes were appended after the end of the signed file" in coverage.detail
        assert "later revisions" not in coverage.detail


async def test_an_unsigned_revision_after_the_last_signature_is_refused(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    ((name, signed),) = docs["person-then-organisation"]
    writer = IncrementalPdfFileWriter(BytesIO(signed), strict=False)
    writer.root["/Lang"] = generic.TextStringObject("vi")  # not a signature, not a form fill
    writer.update_root()
    out = BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    decision = await make_verifier().verify(
        [(name, out.getvalue())], document_type="QĐ", direction="outgoing"
    )
    assert not decision.accepted, decision.reason
    assert decision.failed_rule == "signatures-valid"


@pytest.mark.parametrize(
    ("fixture", "problem"),
    [
        pytest.param("corrupted", "cannot be read as a PDF", id="truncated-pdf"),
        pytest.param("not-a-pdf", "not a PDF file although named", id="zip-named-pdf"),
    ],
)
async def test_unreadable_files_are_refused_even_when_unsigned_documents_are_accepted(
    make_verifier: Any, docs: dict[str, Any], fixture: str, problem: str
) -> None:
    decision = await make_verifier(mode="off", accept_unsigned=True).verify(
        docs[fixture], document_type="", direction="outgoing"
    )
    assert not decision.accepted
    assert decision.failed_rule == "readable-files"
    assert problem in decision.reason
