"""The validation engine: pyhanko's PAdES and CMS validation, turned into per-check results.

It runs in a worker process (or a thread): the inputs and results are plain picklable
dataclasses, and each worker keeps its own event loop and revocation source (cache included)
between calls. One entry point per question, both synchronous:

    results, lookups = check_files(files, material, revocation_config)   # files: (name, path)
    result, lookups = validate_certificate(der, intermediates, at, material, revocation_config)

Each file is parsed once: the signatures are read, the revocation information for their
chains is fetched (or taken from the cache), then every signature is validated at its signing
time with exactly that information (pyhanko fetches nothing itself).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import io
import logging
import os
import re
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any, BinaryIO

import structlog
from asn1crypto import cms, crl, ocsp, pem, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus, AdESSubIndic
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
    validate_cert_usage,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import (
    PdfSignatureStatus,
    SignatureCoverageLevel,
    StandardCMSSignatureStatus,
)
from pyhanko_certvalidator import ValidationContext

from lienthong_kit.logs import configure_logging
from signature_service.pki import (
    KEY_USAGES_FOR_SIGNING,
    classify,
    describe_key_usage,
    fingerprint,
    rfc4514,
    trusted_chain,
    uid_of,
)
from signature_service.revocation import RevocationConfig, RevocationSource

__all__ = [
    "CHECK_FAILED",
    "CHECK_INDETERMINATE",
    "CHECK_PASSED",
    "CHECK_SKIPPED",
    "OUT_OF_MEMORY",
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
    # those of them that name no revocation location at all (SHA-256)
    revocation_no_information: frozenset[str] = frozenset()
    person_prefixes: tuple[str, ...] = ("CCCD:", "CMND:", "HC:")
    organisation_prefixes: tuple[str, ...] = ("MST:", "MNS:")


@dataclass
class Check:
    name: str
    outcome: int
    detail: str  # English, for a clerk
    detail_vi: str = ""  # the same in Vietnamese
    technical: str = ""  # the library's own words, for an auditor (empty when none)


def _check(name: str, outcome: int, en: str, vi: str, technical: str = "") -> Check:
    return Check(name, outcome, en, vi, technical)


def _not_run(name: str, en: str, vi: str) -> Check:
    """A check validation never reached: said so, never PASSED."""
    return Check(name, CHECK_SKIPPED, f"not run: {en}", f"không kiểm tra: {vi}")


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
    # ETSI EN 319 102-1: TOTAL-PASSED | TOTAL-FAILED | INDETERMINATE, and its sub-indication
    indication: str = ""
    sub_indication: str = ""
    # SHA-256 of the certificates of this signature's chain (its details name only these)
    chain_keys: frozenset[str] = frozenset()
    own_key: str = ""  # SHA-256 of the signer certificate

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(c.outcome != CHECK_FAILED for c in self.checks)

    @property
    def reason_vi(self) -> str:
        return _first_failure(self.checks, vi=True)

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
    indication: str = ""
    sub_indication: str = ""

    @property
    def valid(self) -> bool:
        return all(c.outcome != CHECK_FAILED for c in self.checks)

    @property
    def reason(self) -> str:
        return _first_failure(self.checks)

    @property
    def reason_vi(self) -> str:
        return _first_failure(self.checks, vi=True)


def _first_failure(checks: list[Check], *, vi: bool = False) -> str:
    """The first failed check, as a reason ("" when none failed)."""
    failed = [c for c in checks if c.outcome == CHECK_FAILED]
    if not failed:
        return ""
    return f"{failed[0].name}: {failed[0].detail_vi if vi else failed[0].detail}"


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


# a file: its path, or its bytes when small (verifier.INLINE_BYTES)
Source = str | bytes
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


def init_worker(service: str, level: str, memory_bytes: int = 0) -> None:
    """A worker process's initializer: JSON logs like the rest of the service, and its address
    space capped at ``memory_bytes`` (0: no cap) so that a file that makes the validator
    allocate without end fails this worker's allocation, not the whole service."""
    configure_logging(service, level)
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def serve(connection: Connection, service: str, level: str, memory_bytes: int = 0) -> None:
    """A worker process's life: take ``(func, args)`` from the pipe, send back ``(True,
    result)`` or ``(False, exception)``, until the pipe closes or ``None`` arrives."""
    init_worker(service, level, memory_bytes)
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        func, args = task
        try:
            answer: tuple[bool, Any] = (True, func(*args))
        except BaseException as exc:  # noqa: BLE001 - the caller raises it
            answer = (False, exc)
        try:
            connection.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - an answer that does not pickle
            connection.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


def memory_limit() -> int:
    """This process's address-space cap in bytes (-1: none)."""
    return resource.getrlimit(resource.RLIMIT_AS)[0]


def traced(trace_id: str, func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` with the caller's trace id on every log line it writes."""
    if not trace_id:
        return func(*args)
    with structlog.contextvars.bound_contextvars(trace_id=trace_id):
        return func(*args)


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


_REVINFO: dict[bytes, Any] = {}
# DER bytes of the CRLs and OCSP responses kept parsed (a larger one is parsed every time)
REVINFO_KEPT_BYTES = 16 * 1024 * 1024


def _parsed(ders: tuple[bytes, ...], kind: Any) -> list[Any]:
    """CRLs and OCSP responses parsed once per process: the cache hands the same ones to
    document after document, and parsing them was a twentieth of a verification."""
    found = []
    for der in ders:
        item = _REVINFO.get(der)
        if item is None:
            item = kind.load(der)
            if len(der) <= REVINFO_KEPT_BYTES:
                if sum(map(len, _REVINFO)) + len(der) > REVINFO_KEPT_BYTES:
                    _REVINFO.clear()
                _REVINFO[der] = item
        found.append(item)
    return found


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


def _open(source: Source) -> BinaryIO:
    """A file given as a path, or as bytes small enough to travel with the task."""
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def _head(source: Source, size: int = 1024) -> bytes:
    if isinstance(source, bytes):
        return source[:size]
    with open(source, "rb") as stream:
        return stream.read(size)


def _tail(source: Source, size: int = 1024) -> bytes:
    if isinstance(source, bytes):
        return source[-size:]
    with open(source, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        stream.seek(max(stream.tell() - size, 0))
        return stream.read(size)


def _pdf_problem(name: str, head: bytes) -> str:
    if PDF_MAGIC not in head:
        shown = head[:8].hex(" ")
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
        crls=[] if off else _parsed(material.crls, crl.CertificateList),
        ocsps=[] if off else _parsed(material.ocsps, ocsp.OCSPResponse),
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
    layout: _Layout | None = None


def check_files(
    files: list[tuple[str, Source]], material: Material, revocation: RevocationConfig
) -> tuple[list[FileResult], dict[str, int]]:
    """Every file's signatures with every check (never raises for a bad file), and the
    revocation look-ups made (``"ocsp:fetched"`` -> count) for the caller's metrics. Files are
    (name, path): they are read from disk as validation needs them, never held whole; or
    (name, bytes) for a file small enough to travel with the task."""
    worker = _worker(revocation)
    try:
        results = worker.loop.run_until_complete(_check_files(files, material, worker.source))
    except MemoryError:
        results = [FileResult(name, "file", problem=OUT_OF_MEMORY) for name, _ in files[:1]]
    return results, worker.source.take_counts()


async def _check_files(
    files: list[tuple[str, Source]], material: Material, source: RevocationSource
) -> list[FileResult]:
    with ExitStack() as opened:  # the files stay open until every signature is validated
        return await _check_open_files(files, material, source, opened)


async def _check_open_files(
    files: list[tuple[str, Source]], material: Material, source: RevocationSource, opened: ExitStack
) -> list[FileResult]:
    names = {name for name, _ in files}
    by_name = dict(files)
    results: list[FileResult] = []
    pending: list[_Pending] = []
    for name, path in files:
        head = _head(path)
        if _is_p7s(name):
            results.append(_read_p7s(name, path, by_name, names, material, pending, opened))
        elif PDF_MAGIC in head:
            results.append(_read_pdf(name, path, material, pending, opened))
        else:
            result = FileResult(name, "file")
            if name.lower().endswith(".pdf"):
                result.problem = _pdf_problem(name, head)
            results.append(result)
    if pending:
        material = await _with_revocation(material, pending, source)
    for item in pending:
        try:
            status, messages = await _soft_failing(item.run, material, item.cert)
            _fill_checks(item.report, status, messages, material, item.cert, item.layout)
        except Exception as exc:  # noqa: BLE001 - a malformed signature is a failed check
            _unprocessable(item.report, exc)
    return results


async def _with_revocation(
    material: Material, pending: list[_Pending], source: RevocationSource
) -> Material:
    """The material plus the revocation information for every signer's chain."""
    return await _gather(
        material, [(item.report, item.cert, item.others) for item in pending], source
    )


async def _gather(
    material: Material,
    signers: list[tuple[SignatureResult, x509.Certificate, list[x509.Certificate]]],
    source: RevocationSource,
) -> Material:
    """The revocation information for each signer's chain, fetched only when the chain reaches
    a configured anchor with every link's signature verified (a self-made chain's URLs are
    never requested); each report learns its chain's certificates."""
    chains, seen = [], set()
    untrusted: dict[str, str] = {}
    for report, cert, others in signers:
        key = fingerprint(cert)
        chain = _trusted_chain(cert, others, material)
        report.own_key = key
        report.chain_keys = frozenset(fingerprint(c) for c in chain or [cert])
        if chain is None:
            untrusted[key] = (
                f"{rfc4514(cert.subject)}: not looked up: no chain to a configured trust anchor"
                " (its revocation locations are contacted only for a trusted chain)"
            )
        elif key not in seen:
            seen.add(key)
            chains.append(chain)
    found = await source.gather(chains)
    return dataclasses.replace(
        material,
        crls=tuple(found.crls),
        ocsps=tuple(found.ocsps),
        revocation_notes=found.notes,
        revocation_unknown={**untrusted, **found.unknown} if source.mode != "off" else {},
        revocation_no_information=frozenset(found.no_information),
    )


# (signer, the certificates it came with, the trust material) -> its trusted chain or None
_CHAINS: dict[tuple[str, tuple[str, ...], bytes], Any] = {}


def _trusted_chain(
    cert: x509.Certificate, others: list[x509.Certificate], material: Material
) -> list[x509.Certificate] | None:
    """pki.trusted_chain, remembered per worker: the same signers come back document after
    document, and matching names in asn1crypto is slow (a tenth of a verification)."""
    key = (
        fingerprint(cert),
        tuple(fingerprint(c) for c in others),
        _digest(material.anchors, material.intermediates),
    )
    if key in _CHAINS:
        found: list[x509.Certificate] | None = _CHAINS[key]
        return found
    found = trusted_chain(
        cert, [*others, *_certs(material.intermediates)], _certs(material.anchors)
    )
    if len(_CHAINS) > 1_000:
        _CHAINS.clear()
    _CHAINS[key] = found
    return found


def _digest(*groups: tuple[bytes, ...]) -> bytes:
    """One SHA-256 over groups of DER blobs (lengths included: no two groupings collide)."""
    digest = hashlib.sha256()
    for group in groups:
        digest.update(len(group).to_bytes(4, "big"))
        for item in group:
            digest.update(len(item).to_bytes(4, "big"))
            digest.update(item)
    return digest.digest()


def _read_pdf(
    name: str, path: Source, material: Material, pending: list[_Pending], opened: ExitStack
) -> FileResult:
    result = FileResult(name, "pdf")
    if b"%%EOF" not in _tail(path):
        result.problem = (
            "cannot be read as a PDF: it has no end-of-file marker (%%EOF) in its last 1024"
            " bytes (truncated?)"
        )
        return result
    try:
        stream = opened.enter_context(_open(path))
        reader = PdfFileReader(stream, strict=False)
        signatures = list(reader.embedded_regular_signatures)
        layout = _layout(reader, path, signatures) if signatures else None
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
            pending.append(_Pending(report, sig.signer_cert, extra, run, layout))
        except Exception as exc:  # noqa: BLE001 - a malformed signature is a failed check
            _unprocessable(report, exc)
    return result


def _unprocessable(report: SignatureResult, exc: BaseException) -> None:
    report.checks.append(
        _check(
            "integrity",
            CHECK_FAILED,
            "the signature cannot be processed",
            "không xử lý được chữ ký",
            _describe(exc),
        )
    )
    report.indication, report.sub_indication = _indication_of_error(exc)


def _read_p7s(
    name: str,
    path: Source,
    by_name: dict[str, Source],
    names: set[str],
    material: Material,
    pending: list[_Pending],
    opened: ExitStack,
) -> FileResult:
    result = FileResult(name, "p7s")
    target = name[: -len(".p7s")]
    if target not in names:
        result.problem = f"a detached signature for {target!r}, which is not among the files"
        return result
    try:
        with _open(path) as stream:  # a signature: small (the file cap bounds it)
            signed = _load_cms(stream.read())
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
        content = opened.enter_context(_open(by_name[target]))
        run = functools.partial(_run_cms, content, signed, moment, extra)
        pending.append(_Pending(report, certs.signer_cert, extra, run))
    except Exception as exc:  # noqa: BLE001
        _unprocessable(report, exc)
    return result


async def _run_cms(
    content: BinaryIO,
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


OUT_OF_MEMORY = (
    "validating it needs more memory than a validation worker may use"
    " (LIENTHONG_SIGNATURE_MEMORY_PER_WORKER_BYTES)"
)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return OUT_OF_MEMORY
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
    layout: _Layout | None,
) -> None:
    checks = report.checks
    if not status.intact:
        checks.append(
            _check(
                "integrity",
                CHECK_FAILED,
                "the signed content was changed after signing (its digest does not match)",
                "nội dung đã ký bị thay đổi sau khi ký (giá trị băm không khớp)",
            )
        )
    elif not status.valid:
        checks.append(
            _check(
                "integrity",
                CHECK_FAILED,
                "the signature value does not verify with the signer certificate's key",
                "giá trị chữ ký không khớp với khóa của chứng thư người ký",
            )
        )
    else:
        checks.append(
            _check(
                "integrity",
                CHECK_PASSED,
                "intact; the signature value verifies",
                "toàn vẹn; giá trị chữ ký hợp lệ",
            )
        )
    if isinstance(status, PdfSignatureStatus):
        checks.append(_coverage(status, layout, report.index))
    path = status.validation_path
    if path is not None and status.trust_problem_indic is None:
        report.trust_anchor = rfc4514(path.trust_anchor.authority.name)
    checks.extend(_trust_checks(status, messages, material, cert, report))
    checks.append(_kind_check(report, material))
    report.indication, report.sub_indication = _indication(status, checks)


def _indication(status: StandardCMSSignatureStatus, checks: list[Check]) -> tuple[str, str]:
    """ETSI EN 319 102-1's indication and sub-indication, from pyhanko's AdES vocabulary."""
    if not status.intact:
        sub: AdESSubIndic = AdESFailure.HASH_FAILURE
    elif not status.valid:
        sub = AdESFailure.SIG_CRYPTO_FAILURE
    elif any(c.name == "coverage" and c.outcome == CHECK_FAILED for c in checks):
        # a change after signing that the policy does not allow: the signed document is not
        # the document received (pyhanko's PAdES layer reports it as a format failure)
        sub = AdESFailure.FORMAT_FAILURE
    elif unknown := next(
        (c.technical for c in checks if c.name == "revocation" and c.technical in _UNKNOWN),
        "",
    ):
        # the status could not be obtained: pyhanko says only CERTIFICATE_CHAIN_GENERAL_FAILURE
        return _INDICATIONS[AdESStatus.INDETERMINATE], unknown
    elif status.trust_problem_indic is not None:
        sub = status.trust_problem_indic
    else:
        return _INDICATIONS[AdESStatus.PASSED], ""
    return _INDICATIONS[sub.status], str(sub.standard_name)


def _indication_of_error(exc: BaseException) -> tuple[str, str]:
    sub = getattr(exc, "ades_subindication", None) or AdESFailure.FORMAT_FAILURE
    return _INDICATIONS[sub.status], str(sub.standard_name)


# the revocation status could not be fetched (try later) / no certificate location to fetch it
TRY_LATER = str(AdESIndeterminate.TRY_LATER.standard_name)
NO_REVOCATION_INFORMATION = "CERTIFICATE_NO_REVOCATION_INFORMATION"
_UNKNOWN = (TRY_LATER, NO_REVOCATION_INFORMATION)

_INDICATIONS = {
    AdESStatus.PASSED: "TOTAL-PASSED",
    AdESStatus.FAILED: "TOTAL-FAILED",
    AdESStatus.INDETERMINATE: "INDETERMINATE",
}


@dataclass(frozen=True)
class _Layout:
    """What coverage needs to know about the whole file, beyond one signature."""

    revisions: int  # incremental revisions in the file
    signed_revisions: tuple[int, ...]  # each signature's revision, in signing order
    unsigned_tail: int  # bytes after the end of the last signed revision (line ends excepted)
    pages: dict[int, int]  # object number -> page number (1-based), for page objects and contents


_OBJECT = re.compile(r"(?:IndirectObject\(|Reference\(idnum=)(\d+)")


def _coverage(status: PdfSignatureStatus, layout: _Layout | None, index: int) -> Check:
    coverage = status.coverage
    level = status.modification_level
    if coverage is None or coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        return _check(
            "coverage",
            CHECK_FAILED,
            "the signature does not cover its revision of the file",
            "chữ ký không bao trùm phiên bản tài liệu mà nó ký",
            getattr(coverage, "name", ""),
        )
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return _check("coverage", CHECK_PASSED, "covers the whole file", "bao trùm toàn bộ tệp")
    if level not in ACCEPTED_LATER_CHANGES:
        what = status.diff_result
        technical = _describe(what) if isinstance(what, Exception) else getattr(level, "name", "")
        pages = sorted(
            {
                layout.pages[int(n)]
                for n in _OBJECT.findall(technical)
                if layout is not None and int(n) in layout.pages
            }
        )
        if pages:
            shown = ", ".join(str(p) for p in pages)
            en = f"page {shown} was changed after this signature"
            vi = f"trang {shown} đã bị sửa sau khi ký"
        else:
            en = "the file was changed after this signature beyond signing or filling forms"
            vi = "tệp đã bị sửa sau khi ký, không chỉ thêm chữ ký hoặc điền biểu mẫu"
        return _check("coverage", CHECK_FAILED, en, vi, technical)
    if layout is not None and layout.unsigned_tail:
        last = max(layout.signed_revisions)
        if layout.revisions > last + 1:
            added = layout.revisions - last - 1
            return _check(
                "coverage",
                CHECK_FAILED,
                f"{added} revision(s) were added to the file after the last signature and no"
                f" signature covers them ({layout.unsigned_tail} bytes)",
                f"tệp có thêm {added} phiên bản sau chữ ký cuối cùng mà không được ký"
                f" ({layout.unsigned_tail} byte)",
                f"unsigned incremental update(s): revisions {last + 1}..{layout.revisions - 1}",
            )
        return _check(
            "coverage",
            CHECK_FAILED,
            f"{layout.unsigned_tail} bytes were appended after the end of the signed file and no"
            " signature covers them",
            f"có {layout.unsigned_tail} byte được thêm vào sau phần cuối tệp đã ký mà không"
            " được chữ ký nào bao trùm",
            "bytes after the last %%EOF of the last signed revision",
        )
    later = (
        layout is not None
        and index < len(layout.signed_revisions)
        and layout.signed_revisions[index] < layout.revisions - 1
    )
    if not later:
        return _check(
            "coverage",
            CHECK_PASSED,
            "covers the whole file (but trailing line ends)",
            "bao trùm toàn bộ tệp (trừ ký tự xuống dòng ở cuối)",
        )
    return _check(
        "coverage",
        CHECK_PASSED,
        "covers its revision; the later revisions, each covered by a later signature, only"
        " add signatures or fill form fields",
        "bao trùm phiên bản của nó; các phiên bản sau, đều được ký, chỉ thêm chữ ký hoặc"
        " điền biểu mẫu",
        getattr(level, "name", ""),
    )


def _layout(reader: PdfFileReader, path: Source, signatures: list[EmbeddedPdfSignature]) -> _Layout:
    size = len(path) if isinstance(path, bytes) else os.path.getsize(path)
    ends = []
    for sig in signatures:
        byte_range = sig.sig_object.get("/ByteRange")
        ends.append(int(byte_range[2]) + int(byte_range[3]) if byte_range else size)
    return _Layout(
        revisions=reader.xrefs.total_revisions,
        signed_revisions=tuple(sig.signed_revision for sig in signatures),
        unsigned_tail=_unsigned_bytes(path, max(ends)) if ends else 0,
        pages=_page_objects(reader),
    )


_BLANK = b"\r\n\t \x00"


def _unsigned_bytes(path: Source, start: int) -> int:
    """The bytes from ``start`` to the end, trailing and leading line ends and blanks aside
    (read in chunks: the tail may be as large as the file)."""
    first = last = -1
    with _open(path) as stream:
        stream.seek(start)
        position = start
        while chunk := stream.read(1 << 20):
            if (stripped := chunk.lstrip(_BLANK)) and first < 0:
                first = position + len(chunk) - len(stripped)
            if kept := chunk.rstrip(_BLANK):
                last = position + len(kept)
            position += len(chunk)
    return last - first if first >= 0 else 0


def _page_objects(reader: PdfFileReader) -> dict[int, int]:
    """Object number -> page number, for each page and its content streams."""
    found: dict[int, int] = {}
    try:
        pages = reader.root.raw_get("/Pages")
        stack: list[Any] = [pages]
        number = 0
        while stack and number < 10_000:
            ref = stack.pop()
            node = ref.get_object() if hasattr(ref, "get_object") else ref
            if node.get("/Type") == "/Pages":
                stack.extend(reversed(list(node.raw_get("/Kids"))))
                continue
            number += 1
            if isinstance(ref, generic.IndirectObject):
                found[ref.idnum] = number
            contents = node.raw_get("/Contents") if "/Contents" in node else None
            items: list[Any] = contents if isinstance(contents, list) else [contents]
            for item in items:
                if isinstance(item, generic.IndirectObject):
                    found[item.idnum] = number
    except Exception:  # noqa: BLE001, S110 - page numbers only improve the wording
        pass
    return found


def _trust_checks(
    status: StandardCMSSignatureStatus,
    messages: list[str],
    material: Material,
    cert: x509.Certificate,
    report: SignatureResult,
) -> list[Check]:
    """chain, validity, key-usage and revocation, from pyhanko's AdES sub-indication: a check
    is PASSED only when validation reached it and it held; otherwise NOT RUN, with why."""
    if not (status.intact and status.valid):
        return [
            _not_run(n, "the signature itself does not verify", "bản thân chữ ký không hợp lệ")
            for n in _TRUST
        ]
    problem = status.trust_problem_indic
    cause = _cause(messages)
    moment = report.signing_time
    when = _fmt(moment) if moment else "now"
    anchor = report.trust_anchor
    chain = _check(
        "chain",
        CHECK_PASSED,
        f"chains to the trust anchor {anchor}" if anchor else "chains to a trust anchor",
        f"chuỗi chứng thư dẫn tới gốc tin cậy {anchor}" if anchor else "dẫn tới gốc tin cậy",
    )
    span = f"{_fmt(cert.not_valid_before)} to {_fmt(cert.not_valid_after)}"
    validity = _check(
        "validity",
        CHECK_PASSED,
        f"valid at the signing time {when} ({span})",
        f"còn hiệu lực tại thời điểm ký {when} ({span.replace(' to ', ' đến ')})",
    )
    ku = describe_key_usage(cert)
    usage = _check(
        "key-usage",
        CHECK_PASSED,
        f"key usage {ku} allows signing",
        f"mục đích sử dụng khóa {ku} cho phép ký",
    )
    revocation = _revocation_check(material, report)
    if problem is None:
        return [chain, validity, usage, revocation]
    name = getattr(problem, "name", str(problem))
    stopped_en, stopped_vi = "validation stopped at an earlier failure", "dừng ở lỗi trước đó"
    if name == "NO_CERTIFICATE_CHAIN_FOUND":
        chain = _check(
            "chain",
            CHECK_FAILED,
            f"no chain to a configured trust anchor (issuer {rfc4514(cert.issuer)} is not trusted)",
            f"không có chuỗi tới gốc tin cậy đã cấu hình (bên cấp {rfc4514(cert.issuer)} chưa"
            " được tin cậy)",
            cause,
        )
        return [
            chain,
            *(
                _not_run(n, "no chain to a trust anchor", "không có chuỗi tới gốc tin cậy")
                for n in ("validity", "key-usage", "revocation")
            ),
        ]
    chain_found = _check(
        "chain",
        CHECK_PASSED,
        "a chain to a configured trust anchor was found",
        "tìm thấy chuỗi tới gốc tin cậy đã cấu hình",
    )
    if name in {"OUT_OF_BOUNDS_NO_POE", "EXPIRED", "NOT_YET_VALID"}:
        early = moment is not None and moment < cert.not_valid_before
        if early or name == "NOT_YET_VALID":
            en = (
                f"the certificate is valid only from {_fmt(cert.not_valid_before)}, after the"
                f" signing time {when}"
            )
            vi = f"chứng thư chỉ có hiệu lực từ {_fmt(cert.not_valid_before)}, sau thời điểm ký"
        else:
            en = (
                f"the certificate expired on {_fmt(cert.not_valid_after)}, before the signing"
                f" time {when}"
            )
            vi = f"chứng thư đã hết hạn ngày {_fmt(cert.not_valid_after)}, trước thời điểm ký"
        validity = _check("validity", CHECK_FAILED, en, vi, cause)
        return [
            chain_found,
            validity,
            _not_run("key-usage", "the certificate is not valid", "chứng thư không còn hiệu lực"),
            _not_run("revocation", "the certificate is not valid", "chứng thư không còn hiệu lực"),
        ]
    if name == "CHAIN_CONSTRAINTS_FAILURE" and not _allows_signing(cert):
        # pyhanko checks the key usage only after the whole path validated
        usage = _check(
            "key-usage",
            CHECK_FAILED,
            f"key usage {ku} does not allow signing (needs nonRepudiation or digitalSignature)",
            f"mục đích sử dụng khóa {ku} không cho phép ký (cần nonRepudiation hoặc"
            " digitalSignature)",
            cause,
        )
        return [chain_found, validity, usage, revocation]
    if name in {"REVOKED_NO_POE", "REVOKED_CA_NO_POE", "REVOKED"}:
        details = status.revocation_details
        ca = name == "REVOKED_CA_NO_POE"
        whose_en = "an issuing CA certificate" if ca else "the certificate"
        whose_vi = "chứng thư của tổ chức cấp" if ca else "chứng thư"
        if details is not None:
            reason = details.revocation_reason.native if details.revocation_reason else None
            en = f"{whose_en} was revoked on {_fmt(details.revocation_date)}"
            en += f" (reason: {reason})" if reason else ""
            vi = f"{whose_vi} đã bị thu hồi ngày {_fmt(details.revocation_date)}"
        else:
            en, vi = f"{whose_en} was revoked", f"{whose_vi} đã bị thu hồi"
        return [
            chain_found,
            validity,
            _not_run("key-usage", stopped_en, stopped_vi),
            _check("revocation", CHECK_FAILED, en, vi, cause),
        ]
    if revocation.outcome in (CHECK_FAILED, CHECK_INDETERMINATE) or "revocation" in cause.lower():
        if revocation.outcome == CHECK_PASSED:
            revocation = _check(
                "revocation",
                CHECK_FAILED,
                "the revocation information obtained does not settle the certificate's status",
                "thông tin thu hồi thu được không xác định được trạng thái chứng thư",
                cause,
            )
        return [chain_found, validity, _not_run("key-usage", stopped_en, stopped_vi), revocation]
    chain = _check(
        "chain",
        CHECK_FAILED,
        f"the certificate chain is not valid ({name})",
        f"chuỗi chứng thư không hợp lệ ({name})",
        cause,
    )
    return [
        chain,
        *(_not_run(n, stopped_en, stopped_vi) for n in ("validity", "key-usage", "revocation")),
    ]


_TRUST = ("chain", "validity", "key-usage", "revocation")


def _allows_signing(cert: x509.Certificate) -> bool:
    usage = cert.key_usage_value
    return usage is None or bool(set(usage.native) & set(KEY_USAGES_FOR_SIGNING))


def _revocation_check(material: Material, report: SignatureResult) -> Check:
    """This signature's revocation outcome: only its own chain's certificates are named."""
    if material.revocation_mode == "off":
        return _check(
            "revocation",
            CHECK_SKIPPED,
            "not run: revocation checking is off",
            "không kiểm tra: tắt kiểm tra thu hồi",
        )
    keys = report.chain_keys
    unknown_keys = [k for k in sorted(keys) if k in material.revocation_unknown]
    why = "; ".join(material.revocation_unknown[k] for k in unknown_keys)
    # nothing to fetch later when no certificate left unknown names a location
    sub = (
        NO_REVOCATION_INFORMATION
        if all(k in material.revocation_no_information for k in unknown_keys)
        else TRY_LATER
    )
    if unknown_keys and material.revocation_mode == "require":
        return _check(
            "revocation",
            CHECK_FAILED,
            f"status unknown: {why}; revocation mode require: a signature whose certificate"
            " status is unknown is not accepted",
            f"không xác định được trạng thái thu hồi: {why}; chế độ require: chữ ký không xác"
            " định được trạng thái thu hồi thì không được chấp nhận",
            sub,
        )
    if unknown_keys:
        return _check(
            "revocation",
            CHECK_INDETERMINATE,
            f"status unknown: {why}; revocation mode soft-fail: accepted with the status unknown",
            f"không xác định được trạng thái thu hồi: {why}; chế độ soft-fail: vẫn chấp nhận"
            " khi chưa rõ trạng thái",
            sub,
        )
    own = material.revocation_notes.get(report.own_key, "no revocation information was needed")
    cas = sorted(
        material.revocation_notes[k]
        for k in keys
        if k != report.own_key and k in material.revocation_notes
    )
    note = own + (f"; issuing CAs: {'; '.join(cas)}" if cas else "")
    return _check(
        "revocation",
        CHECK_PASSED,
        f"not revoked ({note})",
        f"chưa bị thu hồi ({note})",
    )


def _kind_check(report: SignatureResult, material: Material) -> Check:
    if report.signer_kind == 1:
        return _check(
            "signer-kind",
            CHECK_PASSED,
            f"a person's signature (UID {report.uid})",
            f"chữ ký của cá nhân (UID {report.uid})",
        )
    if report.signer_kind == 2:
        return _check(
            "signer-kind",
            CHECK_PASSED,
            f"an organisation's signature (UID {report.uid})",
            f"chữ ký của cơ quan, tổ chức (UID {report.uid})",
        )
    prefixes = ", ".join((*material.person_prefixes, *material.organisation_prefixes))
    shown = report.uid or "none"
    return _check(
        "signer-kind",
        CHECK_INDETERMINATE,
        f"the subject's UID ({shown}) has none of the prefixes {prefixes}",
        f"UID của chủ thể ({shown}) không có tiền tố nào trong {prefixes}",
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


@dataclass
class _CertStatus:
    """The part of a signature status the trust checks read, for a certificate on its own."""

    trust_problem_indic: AdESSubIndic | None
    validation_path: Any
    revocation_details: Any
    intact: bool = True
    valid: bool = True


async def _validate_certificate(
    der: bytes,
    intermediates: list[bytes],
    at: datetime,
    material: Material,
    source: RevocationSource,
) -> CertificateResult:
    cert = x509.Certificate.load(der)
    extra = [x509.Certificate.load(item) for item in intermediates]
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
    # the same pyhanko routine and the same mapping as a signature's signer certificate
    report = SignatureResult("", 0, "", signer_kind=result.signer_kind, uid=result.uid)
    report.signing_time = at
    material = await _gather(material, [(report, cert, extra)], source)

    async def run(material: Material) -> _CertStatus:
        context = _context(material, at, extra)
        outcome = await validate_cert_usage(
            cert,
            context,
            key_usage_settings=_key_usage(),
            paths=context.path_builder.async_build_paths_lazy(cert),
        )
        path = outcome.success_result or outcome.error_path
        return _CertStatus(outcome.error_subindic, path, outcome.revo_details)

    status, messages = await _soft_failing(run, material, cert)
    path = status.validation_path
    if path is not None and status.trust_problem_indic is None:
        result.chain = [rfc4514(c.subject) for c in reversed(list(path.iter_certs(True)))]
        result.trust_anchor = report.trust_anchor = rfc4514(path.trust_anchor.authority.name)
    checks = _trust_checks(status, messages, material, cert, report)
    result.checks = [*checks, _kind_check(report, material)]
    result.indication, result.sub_indication = _indication(status, result.checks)
    return result


def _cert_kind(result: CertificateResult, material: Material) -> Check:
    report = SignatureResult("", 0, "", signer_kind=result.signer_kind, uid=result.uid)
    return _kind_check(report, material)
