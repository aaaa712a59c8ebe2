"""The validation engine: pyhanko's PAdES and CMS validation, turned into per-check results.

It runs in a worker process (or a thread): the inputs and results are plain picklable
dataclasses, and each worker keeps its own event loop and revocation source (cache included)
between calls. One entry point per question, both synchronous:

    results, lookups = check_files(files, material, revocation_config)
    result, lookups = validate_certificate(der, intermediates, at, material, revocation_config)

Each file is parsed once: the signatures are read, the revocation information for their
chains is fetched (or taken from the cache), then every signature is validated at its signing
time with exactly that information (pyhanko fetches nothing itself).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from asn1crypto import cms, pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.general import extract_signer_info
from pyhanko.sign.validation import (
    EmbeddedPdfSignature,
    async_validate_detached_cms,
    async_validate_pdf_signature,
)
from pyhanko.sign.validation.generic_cms import (
    extract_certs_for_validation,
    extract_self_reported_ts,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import (
    PdfSignatureStatus,
    SignatureCoverageLevel,
    StandardCMSSignatureStatus,
)
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)

from signature_service.pki import (
    KEY_USAGES_FOR_SIGNING,
    build_chain,
    classify,
    describe_key_usage,
    fingerprint,
    rfc4514,
    uid_of,
)
from signature_service.revocation import RevocationConfig, RevocationSource

__all__ = [
    "CHECK_FAILED",
    "CHECK_INDETERMINATE",
    "CHECK_PASSED",
    "CHECK_SKIPPED",
    "CertificateResult",
    "Check",
    "FileResult",
    "Material",
    "SignatureResult",
    "check_files",
    "inspect_certificate",
    "shutdown_worker",
    "validate_certificate",
    "warm",
]

# lienthong.common.v1.CheckOutcome values (plain ints: this module crosses process borders)
CHECK_PASSED = 1
CHECK_FAILED = 2
CHECK_INDETERMINATE = 3
CHECK_SKIPPED = 4

PDF_MAGIC = b"%PDF-"
ACCEPTED_LATER_CHANGES = (
    ModificationLevel.NONE,
    ModificationLevel.LTA_UPDATES,
    ModificationLevel.FORM_FILLING,
)


@dataclass(frozen=True)
class Material:
    """What validation needs besides the files (all DER bytes, all picklable)."""

    anchors: tuple[bytes, ...]
    intermediates: tuple[bytes, ...]
    crls: tuple[bytes, ...] = ()
    ocsps: tuple[bytes, ...] = ()
    revocation_mode: str = "require"  # require | soft-fail | off
    # what the revocation fetch found per certificate (SHA-256 of its DER -> words)
    revocation_notes: dict[str, str] = field(default_factory=dict)
    # certificates whose revocation status could not be obtained (SHA-256 -> why)
    revocation_unknown: dict[str, str] = field(default_factory=dict)
    person_prefixes: tuple[str, ...] = ("CCCD:", "CMND:", "HC:")
    organisation_prefixes: tuple[str, ...] = ("MST:", "MNS:")


@dataclass
class Check:
    name: str
    outcome: int
    detail: str


@dataclass
class SignatureResult:
    file_name: str
    index: int
    format: str
    signer_kind: int = 0
    subject: str = ""
    issuer: str = ""
    serial: str = ""
    uid: str = ""
    signing_time: datetime | None = None
    trust_anchor: str = ""
    checks: list[Check] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(c.outcome != CHECK_FAILED for c in self.checks)

    @property
    def reason(self) -> str:
        return _first_failure(self.checks)


@dataclass
class FileResult:
    name: str
    kind: str  # pdf | p7s | file
    problem: str = ""
    signatures: list[SignatureResult] = field(default_factory=list)


@dataclass
class CertificateResult:
    subject: str
    issuer: str
    serial: str
    uid: str
    signer_kind: int
    not_before: datetime
    not_after: datetime
    chain: list[str]
    trust_anchor: str
    checks: list[Check]

    @property
    def valid(self) -> bool:
        return all(c.outcome != CHECK_FAILED for c in self.checks)

    @property
    def reason(self) -> str:
        return _first_failure(self.checks)


def _first_failure(checks: list[Check]) -> str:
    """The first failed check, as a reason ("" when none failed)."""
    failed = [c for c in checks if c.outcome == CHECK_FAILED]
    return f"{failed[0].name}: {failed[0].detail}" if failed else ""


# --- pyhanko's reasons: it logs the certvalidator failure before mapping it to a code ------


class _Capture(logging.Handler):
    """Collects pyhanko's warning messages for the validation running in this thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(self.local, "sink", None)
        if sink is not None:
            sink.append(record.getMessage())


_CAPTURE = _Capture()
for _name in ("pyhanko", "pyhanko_certvalidator"):
    logging.getLogger(_name).addHandler(_CAPTURE)


@contextmanager
def _captured() -> Iterator[list[str]]:
    sink: list[str] = []
    _CAPTURE.local.sink = sink
    try:
        yield sink
    finally:
        _CAPTURE.local.sink = None


def _cause(messages: list[str]) -> str:
    for message in messages:
        if "]: " in message:
            return message.split("]: ", 1)[1]
    return messages[-1] if messages else ""


# --- the worker's state: an event loop and a revocation source (with its cache) per thread ---


@dataclass
class _Worker:
    loop: asyncio.AbstractEventLoop
    source: RevocationSource


_LOCAL = threading.local()
_CERTS: dict[bytes, x509.Certificate] = {}


def _worker(config: RevocationConfig) -> _Worker:
    workers: dict[RevocationConfig, _Worker] | None = getattr(_LOCAL, "workers", None)
    if workers is None:
        workers = _LOCAL.workers = {}
    worker = workers.get(config)
    if worker is None:
        loop = next((w.loop for w in workers.values()), None) or asyncio.new_event_loop()
        worker = workers[config] = _Worker(loop, RevocationSource(config))
    return worker


def warm(seconds: float = 0.0) -> None:
    """Run in a new worker: the imports are done by now; hold the worker ``seconds`` so that
    concurrent warm-up calls each reach a different one."""
    time.sleep(seconds)


def shutdown_worker() -> None:
    """Close this thread's HTTP sessions and event loop (a thread pool's last task)."""
    workers: dict[RevocationConfig, _Worker] = getattr(_LOCAL, "workers", None) or {}
    loops = {id(w.loop): w.loop for w in workers.values()}
    for worker in workers.values():
        worker.loop.run_until_complete(worker.source.close())
    for loop in loops.values():
        loop.close()
    _LOCAL.workers = {}


def _certs(ders: tuple[bytes, ...]) -> list[x509.Certificate]:
    """Parsed once per process: the trust material comes with every call."""
    found = []
    for der in ders:
        cert = _CERTS.get(der)
        if cert is None:
            if len(_CERTS) > 10_000:
                _CERTS.clear()
            cert = _CERTS[der] = x509.Certificate.load(der)
        found.append(cert)
    return found


# --- reading files --------------------------------------------------------------------------------


def _is_p7s(name: str) -> bool:
    return name.lower().endswith(".p7s")


def _load_cms(data: bytes) -> cms.SignedData:
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    info = cms.ContentInfo.load(data)
    if info["content_type"].native != "signed_data":
        raise ValueError(f"a CMS {info['content_type'].native} structure, not signed data")
    signed: cms.SignedData = info["content"]
    signed.native  # noqa: B018 - parse it all now: a broken structure fails here, not later
    return signed


def _pdf_signatures(data: bytes) -> list[EmbeddedPdfSignature]:
    reader = PdfFileReader(BytesIO(data), strict=False)
    return list(reader.embedded_regular_signatures)


def _pdf_problem(name: str, data: bytes) -> str:
    head = data[:1024]
    if PDF_MAGIC not in head:
        shown = data[:8].hex(" ")
        return f"not a PDF file although named {name!r} (it starts with bytes {shown})"
    return ""


def inspect_certificate(data: bytes) -> bytes:
    """The DER of a certificate given in DER or PEM (ValueError when it is neither)."""
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    cert = x509.Certificate.load(data)
    cert.native  # noqa: B018 - parse fully: raises ValueError on garbage
    return bytes(cert.dump())


# --- validation --------------------------------------------------------------------------------


def _context(material: Material, moment: datetime, extra: list[x509.Certificate]) -> Any:
    off = material.revocation_mode == "off"
    return ValidationContext(
        trust_roots=_certs(material.anchors),
        other_certs=[*_certs(material.intermediates), *extra],
        moment=moment,
        allow_fetching=False,
        crls=[] if off else list(material.crls),
        ocsps=[] if off else list(material.ocsps),
        revocation_mode="soft-fail" if off else material.revocation_mode,
        # the revocation information was fetched now, after the signing time: it tells whether
        # the certificate had been revoked by then
        retroactive_revinfo=True,
    )


def _key_usage() -> KeyUsageConstraints:
    return KeyUsageConstraints(key_usage=set(KEY_USAGES_FOR_SIGNING), match_all_key_usages=False)


@dataclass
class _Pending:
    """A signature found, waiting for its revocation information to be validated."""

    report: SignatureResult
    cert: x509.Certificate
    others: list[x509.Certificate]
    run: Callable[[Material], Awaitable[Any]]


def check_files(
    files: list[tuple[str, bytes]], material: Material, revocation: RevocationConfig
) -> tuple[list[FileResult], dict[str, int]]:
    """Every file's signatures with every check (never raises for a bad file), and the
    revocation look-ups made (``"ocsp:fetched"`` -> count) for the caller's metrics."""
    worker = _worker(revocation)
    results = worker.loop.run_until_complete(_check_files(files, material, worker.source))
    return results, worker.source.take_counts()


async def _check_files(
    files: list[tuple[str, bytes]], material: Material, source: RevocationSource
) -> list[FileResult]:
    names = {name for name, _ in files}
    by_name = dict(files)
    results: list[FileResult] = []
    pending: list[_Pending] = []
    for name, data in files:
        if _is_p7s(name):
            results.append(_read_p7s(name, data, by_name, names, material, pending))
        elif PDF_MAGIC in data[:1024]:
            results.append(_read_pdf(name, data, material, pending))
        else:
            result = FileResult(name, "file")
            if name.lower().endswith(".pdf"):
                result.problem = _pdf_problem(name, data)
            results.append(result)
    if pending:
        material = await _with_revocation(material, pending, source)
    for item in pending:
        try:
            status, messages = await _soft_failing(item.run, material, item.cert)
            _fill_checks(item.report, status, messages, material, item.cert)
        except Exception as exc:  # noqa: BLE001 - a malformed signature is a failed check
            item.report.checks.append(
                Check(
                    "integrity",
                    CHECK_FAILED,
                    f"the signature cannot be processed: {_describe(exc)}",
                )
            )
    return results


async def _with_revocation(
    material: Material, pending: list[_Pending], source: RevocationSource
) -> Material:
    """The material plus the revocation information for every signer's chain."""
    pool = [*_certs(material.intermediates), *_certs(material.anchors)]
    chains, seen = [], set()
    for item in pending:
        key = fingerprint(item.cert)
        if key not in seen:
            seen.add(key)
            chains.append(build_chain(item.cert, item.others + pool))
    found = await source.gather(chains)
    return dataclasses.replace(
        material,
        crls=tuple(found.crls),
        ocsps=tuple(found.ocsps),
        revocation_notes=found.notes,
        revocation_unknown=found.unknown,
    )


def _read_pdf(name: str, data: bytes, material: Material, pending: list[_Pending]) -> FileResult:
    result = FileResult(name, "pdf")
    try:
        signatures = _pdf_signatures(data)
    except Exception as exc:  # noqa: BLE001 - a corrupted file is a verdict, not a crash
        result.problem = f"cannot be read as a PDF: {_describe(exc)}"
        return result
    for index, sig in enumerate(signatures):
        report = SignatureResult(name, index, "pades")
        result.signatures.append(report)
        try:
            _describe_signer(report, sig.signer_cert, material)
            moment = sig.self_reported_timestamp or datetime.now(UTC)
            report.signing_time = moment
            extra = list(sig.other_embedded_certs)
            run = functools.partial(_run_pdf, sig, moment, extra)
            pending.append(_Pending(report, sig.signer_cert, extra, run))
        except Exception as exc:  # noqa: BLE001 - a malformed signature is a failed check
            report.checks.append(
                Check(
                    "integrity",
                    CHECK_FAILED,
                    f"the signature cannot be processed: {_describe(exc)}",
                )
            )
    return result


def _read_p7s(
    name: str,
    data: bytes,
    by_name: dict[str, bytes],
    names: set[str],
    material: Material,
    pending: list[_Pending],
) -> FileResult:
    result = FileResult(name, "p7s")
    target = name[: -len(".p7s")]
    if target not in names:
        result.problem = f"a detached signature for {target!r}, which is not among the files"
        return result
    try:
        signed = _load_cms(data)
        signer_info = extract_signer_info(signed)
        certs = extract_certs_for_validation(signed)
    except Exception as exc:  # noqa: BLE001
        result.problem = f"not a readable CMS signature: {_describe(exc)}"
        return result
    report = SignatureResult(target, 0, "cms-detached")
    result.signatures.append(report)
    try:
        _describe_signer(report, certs.signer_cert, material)
        moment = extract_self_reported_ts(signer_info) or datetime.now(UTC)
        report.signing_time = moment
        extra = list(certs.other_certs)
        run = functools.partial(_run_cms, by_name[target], signed, moment, extra)
        pending.append(_Pending(report, certs.signer_cert, extra, run))
    except Exception as exc:  # noqa: BLE001
        report.checks.append(
            Check("integrity", CHECK_FAILED, f"the signature cannot be processed: {_describe(exc)}")
        )
    return result


async def _run_cms(
    content: bytes,
    signed: cms.SignedData,
    moment: datetime,
    extra: list[x509.Certificate],
    material: Material,
) -> Any:
    return await async_validate_detached_cms(
        content,
        signed,
        signer_validation_context=_context(material, moment, extra),
        key_usage_settings=_key_usage(),
    )


async def _run_pdf(
    sig: EmbeddedPdfSignature, moment: datetime, extra: list[x509.Certificate], material: Material
) -> Any:
    return await async_validate_pdf_signature(
        sig,
        signer_validation_context=_context(material, moment, extra),
        key_usage_settings=_key_usage(),
    )


async def _soft_failing(
    run: Callable[[Material], Awaitable[Any]], material: Material, cert: x509.Certificate
) -> tuple[Any, list[str]]:
    """Validate; in soft-fail mode, when the status of a certificate could not be obtained
    and pyhanko fails the chain for want of it, validate again without revocation checks (the
    revocation check then reports INDETERMINATE)."""
    with _captured() as messages:
        status = await run(material)
    problem = getattr(status.trust_problem_indic, "name", None)
    if (
        material.revocation_mode == "soft-fail"
        and material.revocation_unknown
        and problem is not None
        and not problem.startswith("REVOKED")
        and "revocation" in _cause(messages).lower()
    ):
        relaxed = dataclasses.replace(material, revocation_mode="off")
        with _captured() as messages:
            status = await run(relaxed)
    return status, messages


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:300]


def _describe_signer(report: SignatureResult, cert: x509.Certificate, material: Material) -> None:
    report.subject = rfc4514(cert.subject)
    report.issuer = rfc4514(cert.issuer)
    report.serial = format(cert.serial_number, "x")
    report.uid = uid_of(cert)
    report.signer_kind = classify(cert, material.person_prefixes, material.organisation_prefixes)


def _fill_checks(
    report: SignatureResult,
    status: StandardCMSSignatureStatus,
    messages: list[str],
    material: Material,
    cert: x509.Certificate,
) -> None:
    checks = report.checks
    if not status.intact:
        checks.append(
            Check(
                "integrity",
                CHECK_FAILED,
                "the signed content was changed after signing (its digest does not match)",
            )
        )
    elif not status.valid:
        checks.append(
            Check(
                "integrity",
                CHECK_FAILED,
                "the signature value does not verify with the signer certificate's key",
            )
        )
    else:
        checks.append(Check("integrity", CHECK_PASSED, "intact; the signature value verifies"))
    if isinstance(status, PdfSignatureStatus):
        checks.append(_coverage(status))
    path = status.validation_path
    if path is not None and status.trust_problem_indic is None:
        report.trust_anchor = rfc4514(path.trust_anchor.authority.name)
    checks.extend(_trust_checks(status, messages, material, cert, report.signing_time))
    checks.append(_kind_check(report, material))


def _coverage(status: PdfSignatureStatus) -> Check:
    coverage = status.coverage
    level = status.modification_level
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return Check("coverage", CHECK_PASSED, "covers the whole file")
    if coverage == SignatureCoverageLevel.ENTIRE_REVISION and level in ACCEPTED_LATER_CHANGES:
        return Check(
            "coverage",
            CHECK_PASSED,
            "covers its revision; later revisions only add signatures or fill form fields",
        )
    if coverage == SignatureCoverageLevel.ENTIRE_REVISION:
        what = status.diff_result
        detail = f" ({_describe(what)})" if isinstance(what, Exception) else ""
        return Check(
            "coverage",
            CHECK_FAILED,
            f"the file was changed after this signature beyond adding signatures{detail}",
        )
    return Check("coverage", CHECK_FAILED, "the signature does not cover its revision of the file")


def _trust_checks(
    status: StandardCMSSignatureStatus,
    messages: list[str],
    material: Material,
    cert: x509.Certificate,
    moment: datetime | None,
) -> list[Check]:
    """chain, validity, key-usage and revocation, from pyhanko's AdES sub-indication."""
    if not (status.intact and status.valid):
        return [Check(n, CHECK_SKIPPED, "the signature itself does not verify") for n in _TRUST]
    problem = status.trust_problem_indic
    cause = _cause(messages)
    path = status.validation_path
    when = _fmt(moment) if moment else "now"
    chain = Check("chain", CHECK_PASSED, "chains to a configured trust anchor")
    validity = Check(
        "validity",
        CHECK_PASSED,
        f"valid at the signing time {when} ({_fmt(cert.not_valid_before)}"
        f" to {_fmt(cert.not_valid_after)})",
    )
    usage = Check("key-usage", CHECK_PASSED, f"key usage {describe_key_usage(cert)} allows signing")
    path_keys = {fingerprint(c) for c in path.iter_certs(include_root=False)} if path else set()
    revocation = _revocation_passed(material, cert, path_keys)
    if problem is None:
        return [chain, validity, usage, revocation]
    name = getattr(problem, "name", str(problem))
    if name == "NO_CERTIFICATE_CHAIN_FOUND":
        chain = Check(
            "chain",
            CHECK_FAILED,
            f"no chain to a configured trust anchor (issuer {rfc4514(cert.issuer)} is not trusted)",
        )
        return [chain, *(_skip(n, "no chain") for n in ("validity", "key-usage", "revocation"))]
    if name in {"OUT_OF_BOUNDS_NO_POE", "EXPIRED"}:
        validity = Check(
            "validity",
            CHECK_FAILED,
            f"the certificate expired on {_fmt(cert.not_valid_after)}, before the signing time"
            f" {when}",
        )
        return [chain, validity, usage, _skip("revocation", "certificate not valid")]
    if name == "NOT_YET_VALID" or "not valid until" in cause or "not yet valid" in cause:
        validity = Check(
            "validity",
            CHECK_FAILED,
            f"the certificate is valid only from {_fmt(cert.not_valid_before)}, after the"
            f" signing time {when}",
        )
        return [chain, validity, usage, _skip("revocation", "certificate not valid")]
    if name == "CHAIN_CONSTRAINTS_FAILURE":
        usage = Check(
            "key-usage",
            CHECK_FAILED,
            f"key usage {describe_key_usage(cert)} does not allow signing"
            f" (needs nonRepudiation or digitalSignature)",
        )
        return [chain, validity, usage, revocation]
    if name in {"REVOKED_NO_POE", "REVOKED_CA_NO_POE"}:
        details = status.revocation_details
        whose = "an issuing CA certificate" if name == "REVOKED_CA_NO_POE" else "the certificate"
        if details is not None:
            reason = details.revocation_reason.native if details.revocation_reason else None
            text = f"{whose} was revoked on {_fmt(details.revocation_date)}"
            text += f" (reason: {reason})" if reason else ""
        else:
            text = f"{whose} was revoked"
        return [chain, validity, usage, Check("revocation", CHECK_FAILED, f"{text}; {cause}")]
    # everything else (revocation required but unknown, a CA expired, stale revocation info)
    unknown = material.revocation_unknown
    if unknown and (
        "revocation" in cause.lower() or name in {"TRY_LATER", "CERTIFICATE_CHAIN_GENERAL_FAILURE"}
    ):
        why = "; ".join(unknown.values())
        return [
            chain,
            validity,
            usage,
            Check(
                "revocation",
                CHECK_FAILED,
                f"revocation status unknown and required ({material.revocation_mode} mode): {why}",
            ),
        ]
    detail = cause or f"the certificate chain is not valid ({name})"
    return [Check("chain", CHECK_FAILED, detail), validity, usage, revocation]


_TRUST = ("chain", "validity", "key-usage", "revocation")


def _skip(name: str, why: str) -> Check:
    return Check(name, CHECK_SKIPPED, why)


def _revocation_passed(
    material: Material, cert: x509.Certificate, path_keys: set[str] | None = None
) -> Check:
    if material.revocation_mode == "off":
        return Check("revocation", CHECK_SKIPPED, "revocation checking is off")
    key = fingerprint(cert)
    keys = {key} | (path_keys or set())
    unknown = [
        material.revocation_unknown[k] for k in sorted(keys) if k in material.revocation_unknown
    ]
    if unknown and material.revocation_mode == "require":
        return Check(
            "revocation",
            CHECK_FAILED,
            "status unknown and required (revocation mode require): " + "; ".join(unknown),
        )
    if unknown:
        return Check(
            "revocation",
            CHECK_INDETERMINATE,
            "status unknown, accepted in soft-fail mode: " + "; ".join(unknown),
        )
    note = material.revocation_notes.get(key, "no revocation information was needed")
    return Check("revocation", CHECK_PASSED, f"not revoked ({note})")


def _kind_check(report: SignatureResult, material: Material) -> Check:
    if report.signer_kind == 1:
        return Check("signer-kind", CHECK_PASSED, f"a person's signature (UID {report.uid})")
    if report.signer_kind == 2:
        return Check("signer-kind", CHECK_PASSED, f"an organisation's signature (UID {report.uid})")
    prefixes = ", ".join((*material.person_prefixes, *material.organisation_prefixes))
    shown = report.uid or "none"
    return Check(
        "signer-kind",
        CHECK_INDETERMINATE,
        f"the subject's UID ({shown}) has none of the prefixes {prefixes}",
    )


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- a certificate on its own ---------------------------------------------------------------


def validate_certificate(
    der: bytes,
    intermediates: list[bytes],
    at: datetime,
    material: Material,
    revocation: RevocationConfig,
) -> tuple[CertificateResult, dict[str, int]]:
    worker = _worker(revocation)
    result = worker.loop.run_until_complete(
        _validate_certificate(der, intermediates, at, material, worker.source)
    )
    return result, worker.source.take_counts()


async def _validate_certificate(
    der: bytes,
    intermediates: list[bytes],
    at: datetime,
    material: Material,
    source: RevocationSource,
) -> CertificateResult:
    cert = x509.Certificate.load(der)
    extra = [x509.Certificate.load(item) for item in intermediates]
    pool = [*extra, *_certs(material.intermediates), *_certs(material.anchors)]
    found = await source.gather([build_chain(cert, pool)])
    material = dataclasses.replace(
        material,
        crls=tuple(found.crls),
        ocsps=tuple(found.ocsps),
        revocation_notes=found.notes,
        revocation_unknown=found.unknown,
    )
    context = _context(material, at, extra)
    result = CertificateResult(
        subject=rfc4514(cert.subject),
        issuer=rfc4514(cert.issuer),
        serial=format(cert.serial_number, "x"),
        uid=uid_of(cert),
        signer_kind=classify(cert, material.person_prefixes, material.organisation_prefixes),
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        chain=[],
        trust_anchor="",
        checks=[],
    )
    validator = CertificateValidator(cert, extra, validation_context=context)
    chain = Check("chain", CHECK_PASSED, "chains to a configured trust anchor")
    validity = Check("validity", CHECK_PASSED, f"valid at {_fmt(at)}")
    usage = Check("key-usage", CHECK_PASSED, f"key usage {describe_key_usage(cert)} allows signing")
    revocation = _revocation_passed(material, cert)
    with _captured():
        try:
            path = await validator.async_validate_usage(  # type: ignore[no-untyped-call]
                set(KEY_USAGES_FOR_SIGNING)
            )
            result.chain = [
                rfc4514(c.subject) for c in reversed(list(path.iter_certs(include_root=True)))
            ]
            result.trust_anchor = rfc4514(path.trust_anchor.authority.name)
        except InvalidCertificateError as exc:
            usage = Check(
                "key-usage",
                CHECK_FAILED,
                f"key usage {describe_key_usage(cert)} does not allow signing ({exc})",
            )
        except PathBuildingError:
            chain = Check(
                "chain",
                CHECK_FAILED,
                f"no chain to a configured trust anchor (issuer {result.issuer} is not trusted)",
            )
            validity = _skip("validity", "no chain")
            usage = _skip("key-usage", "no chain")
            revocation = _skip("revocation", "no chain")
        except RevokedError as exc:
            revocation = Check("revocation", CHECK_FAILED, str(exc))
        except (ExpiredError, NotYetValidError) as exc:
            validity = Check("validity", CHECK_FAILED, str(exc))
            revocation = _skip("revocation", "certificate not valid")
        except (PathValidationError, ValidationError) as exc:
            if material.revocation_unknown and "revocation" in str(exc).lower():
                why = "; ".join(material.revocation_unknown.values())
                revocation = Check(
                    "revocation",
                    CHECK_FAILED,
                    f"revocation status unknown and required ({material.revocation_mode} mode):"
                    f" {why}",
                )
            else:
                chain = Check("chain", CHECK_FAILED, str(exc))
    result.checks = [chain, validity, usage, revocation, _cert_kind(result, material)]
    return result


def _cert_kind(result: CertificateResult, material: Material) -> Check:
    report = SignatureResult("", 0, "", signer_kind=result.signer_kind, uid=result.uid)
    return _kind_check(report, material)
