"""Every fixture document gets the right verdict with a specific reason (the engine and the
policy, validation in a thread; the test PKI's real CRL server and OCSP responder)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pytest

from lienthong_testing.pki import LocalPki, make_pdf
from signature_service import engine
from signature_service.engine import CHECK_FAILED, CHECK_INDETERMINATE, CHECK_PASSED, CHECK_SKIPPED
from signature_service.metrics import SIGNATURE_REVOCATION_FETCHES
from signature_service.policy import parse_rules

PERSON, ORGANISATION = 1, 2


CASES = [
    pytest.param(
        "person-then-organisation", True, "", "2 valid signature(s)", id="both-signatures"
    ),
    pytest.param(
        "only-person",
        False,
        "organisation-signature-required",
        "no valid organisation",
        id="only-person",
    ),
    pytest.param(
        "only-organisation",
        False,
        "personal-signature-required",
        "competent person",
        id="only-organisation",
    ),
    pytest.param(
        "wrong-order",
        False,
        "organisation-signature-after-personal",
        "organisation signed (signature 0) before the person",
        id="wrong-order",
    ),
    pytest.param(
        "modified-after-signing",
        False,
        "signatures-valid",
        "integrity: the signed content was changed after signing",
        id="modified-after-signing",
    ),
    pytest.param(
        "changed-in-later-revision",
        False,
        "signatures-valid",
        "coverage: page 1 was changed after this signature",
        id="changed-in-later-revision",
    ),
    pytest.param("corrupted", False, "readable-files", "cannot be read as a PDF", id="corrupted"),
    pytest.param(
        "not-a-pdf",
        False,
        "readable-files",
        "not a PDF file although named 'qd-15.pdf'",
        id="non-pdf-named-pdf",
    ),
    pytest.param("unsigned", False, "no-signed-file", "carries no signature", id="unsigned-pdf"),
    pytest.param(
        "revoked-signer",
        False,
        "signatures-valid",
        "revocation: the certificate was revoked on",
        id="revoked-signer",
    ),
    pytest.param(
        "expired-signer",
        False,
        "signatures-valid",
        "validity: the certificate expired on",
        id="expired-signer",
    ),
    pytest.param(
        "wrong-key-usage",
        False,
        "signatures-valid",
        "key-usage: key usage {keyEncipherment} does not allow signing",
        id="wrong-key-usage",
    ),
    pytest.param(
        "unknown-root",
        False,
        "signatures-valid",
        "chain: no chain to a configured trust anchor (issuer CN=Unknown Root CA",
        id="unknown-root",
    ),
    pytest.param("cms-signed-appendix", True, "", "3 valid signature(s)", id="cms-signed-appendix"),
    pytest.param(
        "cms-signature-over-other-bytes",
        False,
        "signatures-valid",
        "phu-luc.xlsx: signature 0 (organisation",
        id="cms-signature-over-other-bytes",
    ),
    pytest.param(
        "appendix-without-signature",
        False,
        "appendix-organisation-signature-required",
        "phu-luc.xlsx: an appendix without a valid organisation signature",
        id="appendix-without-signature",
    ),
    pytest.param(
        "p7s-without-its-file",
        False,
        "readable-files",
        "a detached signature for 'phu-luc.xlsx', which is not among the files",
        id="p7s-without-its-file",
    ),
]


@pytest.mark.parametrize(("fixture", "accepted", "rule", "reason"), CASES)
async def test_every_fixture_gets_its_verdict_and_reason(
    make_verifier: Any, docs: dict[str, Any], fixture: str, accepted: bool, rule: str, reason: str
) -> None:
    decision = await make_verifier().verify(docs[fixture], document_type="QĐ", direction="outgoing")
    assert (decision.accepted, decision.failed_rule) == (accepted, rule), decision.reason
    assert reason in decision.reason


async def test_a_valid_document_reports_each_signature_in_signing_order(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    decision = await make_verifier().verify(
        docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
    )
    person, organisation = decision.signatures
    assert (person.index, person.signer_kind, person.uid) == (0, PERSON, "CCCD:001085012345")
    assert (organisation.index, organisation.signer_kind) == (1, ORGANISATION)
    assert organisation.uid == "MST:5400123456"
    assert decision.personal_valid
    assert decision.organisation_valid
    assert [c.name for c in person.checks] == [
        "integrity",
        "coverage",
        "chain",
        "validity",
        "key-usage",
        "revocation",
        "signer-kind",
    ]
    assert all(c.outcome == CHECK_PASSED for c in person.checks + organisation.checks)
    assert person.trust_anchor.startswith("CN=Test Root CA")
    assert "OCSP http://127.0.0.1" in next(
        c.detail for c in person.checks if c.name == "revocation"
    )


async def test_a_copy_needs_only_the_organisation_signature(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    decision = await make_verifier().verify(
        docs["only-organisation"], document_type="SY", direction="outgoing"
    )
    assert decision.accepted, decision.reason
    assert decision.rule == "SY|TrS|SL@*=organisation"


@pytest.mark.parametrize(
    ("mode", "accepted", "outcome"),
    [
        pytest.param("require", False, CHECK_FAILED, id="require-rejects"),
        pytest.param("soft-fail", True, CHECK_INDETERMINATE, id="soft-fail-accepts-as-unknown"),
        pytest.param("off", True, CHECK_SKIPPED, id="off-does-not-check"),
    ],
)
async def test_an_unreachable_ocsp_responder_behaves_per_mode(
    make_verifier: Any, docs: dict[str, Any], mode: str, accepted: bool, outcome: int
) -> None:
    decision = await make_verifier(mode=mode).verify(
        docs["unreachable-ocsp"], document_type="QĐ", direction="outgoing"
    )
    assert decision.accepted is accepted, decision.reason
    revocation = next(c for c in decision.signatures[0].checks if c.name == "revocation")
    assert revocation.outcome == outcome
    if mode != "off":
        assert "unreachable" in revocation.detail


async def test_revocation_checking_off_accepts_a_revoked_signer(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    decision = await make_verifier(mode="off").verify(
        docs["revoked-signer"], document_type="QĐ", direction="outgoing"
    )
    assert decision.accepted, decision.reason


def fetches(outcome: str) -> float:
    return sum(
        SIGNATURE_REVOCATION_FETCHES.labels(kind, outcome)._value.get() for kind in ("ocsp", "crl")
    )


@pytest.mark.parametrize(
    ("cache", "fetched_again"),
    [pytest.param(True, 0, id="cached-until-next-update"), pytest.param(False, 3, id="cache-off")],
)
async def test_revocation_answers_are_cached(
    make_verifier: Any, docs: dict[str, Any], cache: bool, fetched_again: int
) -> None:
    checker = make_verifier(cache=cache)
    await checker.verify(docs["person-then-organisation"], document_type="QĐ", direction="outgoing")
    before = fetches("fetched")
    decision = await checker.verify(
        docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
    )
    assert decision.accepted
    # person and organisation by OCSP, the intermediate by the root's CRL
    assert fetches("fetched") - before == fetched_again


async def test_offline_mode_uses_only_supplied_revocation_lists(
    make_verifier: Any, docs: dict[str, Any], pki: LocalPki
) -> None:
    checker = make_verifier(offline=True, supplied=pki.folder / "crl")
    before = fetches("fetched")
    revoked = await checker.verify(docs["revoked-signer"], document_type="QĐ", direction="outgoing")
    valid = await checker.verify(
        docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
    )
    assert fetches("fetched") == before
    assert "revoked" in revoked.reason
    assert not revoked.accepted
    assert valid.accepted, valid.reason


async def test_offline_mode_without_supplied_lists_fails_in_require_mode(
    make_verifier: Any, docs: dict[str, Any], tmp_path: Any
) -> None:
    decision = await make_verifier(offline=True, supplied=tmp_path).verify(
        docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
    )
    assert not decision.accepted
    assert decision.failed_rule == "signatures-valid"


async def test_unsigned_documents_pass_only_when_explicitly_accepted(make_verifier: Any) -> None:
    checker = make_verifier(mode="off", accept_unsigned=True)
    decision = await checker.verify(
        [("cv.pdf", make_pdf())], document_type="", direction="outgoing"
    )
    assert decision.accepted
    assert "LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED" in decision.reason


async def test_validation_runs_in_worker_processes(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    checker = make_verifier(workers=2)
    await checker.warm_up()
    worker_pids = set(await asyncio.gather(*(checker._run(os.getpid) for _ in range(4))))
    assert os.getpid() not in worker_pids  # not this process: the event loop is never blocked
    results = await asyncio.gather(
        *(
            checker.verify(docs[name], document_type="QĐ", direction="outgoing")
            for name in ("person-then-organisation", "revoked-signer", "corrupted")
        )
    )
    assert [r.accepted for r in results] == [True, False, False]


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        pytest.param(("QĐ=organisation",), "expected <types>@<direction>", id="no-direction"),
        pytest.param(("*@sideways=organisation",), "direction must be", id="bad-direction"),
        pytest.param(("*@*=anyone",), "requirement must be", id="bad-requirement"),
    ],
)
def test_bad_policy_rules_are_named(rules: tuple[str, ...], problem: str) -> None:
    _, problems = parse_rules(rules)
    assert len(problems) == 1
    assert problem in problems[0]


async def test_a_validation_that_takes_too_long_rejects_the_document(
    make_verifier: Any, docs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file that keeps the validator busy (thread mode: the patched engine is the one used)
    release = threading.Event()  # a thread cannot be stopped: the test lets it go at the end
    monkeypatch.setattr(engine, "check_files", lambda *args: release.wait(30))
    checker = make_verifier(timeout=1.0)
    try:
        decision = await checker.verify(
            docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
        )
    finally:
        release.set()
    assert not decision.accepted
    assert decision.failed_rule == "readable-files"
    assert "validation did not finish within 1 s" in decision.reason


@pytest.mark.parametrize("workers", [pytest.param(1, id="process"), pytest.param(0, id="thread")])
async def test_a_validation_that_outlasts_the_timeout_does_not_hold_up_the_others(
    make_verifier: Any, docs: dict[str, Any], workers: int
) -> None:
    # the good document gets a fresh timeout on the new pool, whose worker starts cold (its
    # imports and caches): 8 s was too short for that in a loaded CI run; 120 s still decides
    checker = make_verifier(workers=workers, timeout=25.0)
    await checker.warm_up()
    # One worker: the good document queues behind the hostile task. When the hostile task
    # times out its pool is replaced (its process killed) and the good one runs on the new
    # pool: without that it would wait the 120 s out and time out itself.
    # (thread mode: a thread cannot be killed, so its task waits on an event set at the end,
    # or it would hold the interpreter's exit for its 120 s)
    release = threading.Event()
    hostile = asyncio.create_task(checker._run(time.sleep if workers else release.wait, 120))
    try:
        await asyncio.sleep(0.2)
        good = asyncio.create_task(
            checker.verify(
                docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
            )
        )
        with pytest.raises(TimeoutError):
            await hostile
        decision = await good
    finally:
        release.set()
    assert decision.accepted, decision.reason
    after = await checker.verify(
        docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
    )
    assert after.accepted, after.reason


async def test_a_task_that_kills_its_worker_is_refused_and_the_next_document_passes(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    checker = make_verifier(workers=1, timeout=60.0)
    await checker.warm_up()
    before = await checker._run(os.getpid)
    with pytest.raises(BrokenProcessPool):  # it died on a new worker too: the task's fault
        await checker._run(os._exit, 3)
    decision = await checker.verify(
        docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
    )
    assert decision.accepted, decision.reason
    assert await checker._run(os.getpid) != before  # a new worker took the dead one's place
