"""Revocation information: OCSP first, then the CRL, over HTTP with a timeout, cached until
the response's next update.

    source = RevocationSource(RevocationConfig(mode="require", timeout=5.0))
    found = await source.gather([chain])      # chain: signer, its CA, ... (the anchor last)
    found.ocsps, found.crls                   # DER, handed to the validation engine
    found.unknown                             # certificate -> why no status was obtained

Modes: ``require`` (a certificate without revocation status fails), ``soft-fail`` (it passes,
reported INDETERMINATE), ``off`` (nothing fetched or checked). ``offline`` fetches nothing and
uses only the CRLs and OCSP responses supplied in a folder (``*.crl``, ``*.ocsp``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from asn1crypto import algos, crl, ocsp, pem, x509

from lienthong_kit.logs import get_logger
from signature_service.pki import fingerprint, rfc4514

__all__ = ["MODES", "RevocationConfig", "RevocationFound", "RevocationSource"]

MODES = ("require", "soft-fail", "off")

log = get_logger(__name__)

# OCSP answers (one per signer certificate) and CRLs kept per process at the most
CACHE_MAX_ENTRIES = 10_000


@dataclass
class RevocationFound:
    crls: list[bytes] = field(default_factory=list)
    ocsps: list[bytes] = field(default_factory=list)
    # certificate SHA-256 -> where its status came from
    notes: dict[str, str] = field(default_factory=dict)
    # certificate SHA-256 -> why no status was obtained
    unknown: dict[str, str] = field(default_factory=dict)
    # the unknown ones that name no OCSP responder and no CRL (nothing to try later)
    no_information: set[str] = field(default_factory=set)


@dataclass
class _Entry:
    der: bytes
    expires: float  # time.monotonic()


def _next_update_ocsp(response: ocsp.OCSPResponse) -> datetime | None:
    single = response["response_bytes"]["response"].parsed["tbs_response_data"]["responses"][0]
    value = single["next_update"].native
    return value if isinstance(value, datetime) else None


def _single_response(response: ocsp.OCSPResponse) -> ocsp.SingleResponse:
    single: ocsp.SingleResponse = response["response_bytes"]["response"].parsed[
        "tbs_response_data"
    ]["responses"][0]
    return single


def _ocsp_status(response: ocsp.OCSPResponse) -> str:
    return str(_single_response(response)["cert_status"].name)


@dataclass(frozen=True)
class RevocationConfig:
    """How revocation is checked (picklable: it travels to the validation workers)."""

    mode: str = "require"
    timeout: float = 5.0
    offline: bool = False
    supplied: Path | None = None
    cache: bool = True
    cache_max_seconds: float = 86400.0
    # the largest CRL or OCSP response read (a reply is never read unbounded)
    max_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"revocation mode {self.mode!r} is not one of {', '.join(MODES)}")


class RevocationSource:
    """Fetches and caches; lives in a validation worker (one per worker thread or process)."""

    def __init__(self, config: RevocationConfig) -> None:
        self.config = config
        self.mode = config.mode
        self.timeout = config.timeout
        self.offline = config.offline
        self.cache_enabled = config.cache
        self.cache_max_seconds = config.cache_max_seconds
        self._cache: dict[str, _Entry] = {}
        self._session: aiohttp.ClientSession | None = None
        self.supplied_crls: list[bytes] = []
        self.supplied_ocsps: list[bytes] = []
        self._supplied = config.supplied
        self._supplied_stamp: object = None
        self._counts: dict[str, int] = {}
        self.reload_supplied()

    def _count(self, kind: str, outcome: str) -> None:
        key = f"{kind}:{outcome}"
        self._counts[key] = self._counts.get(key, 0) + 1

    def take_counts(self) -> dict[str, int]:
        """Look-ups since the last call (``"ocsp:fetched"`` -> n), for the metrics."""
        counts, self._counts = self._counts, {}
        return counts

    def reload_supplied(self) -> None:
        """Read the supplied CRLs and OCSP responses (DER or PEM) from the folder."""
        if self._supplied is None or not self._supplied.is_dir():
            return
        items = sorted(self._supplied.iterdir())
        stamp = [(str(p), p.stat().st_mtime, p.stat().st_size) for p in items]
        if stamp == self._supplied_stamp:
            return
        self._supplied_stamp = stamp
        crls, ocsps = [], []
        for item in items:
            data = item.read_bytes()
            if pem.detect(data):
                _, _, data = pem.unarmor(data)
            if item.suffix.lower() == ".crl":
                crls.append(data)
            elif item.suffix.lower() == ".ocsp":
                ocsps.append(data)
        self.supplied_crls, self.supplied_ocsps = crls, ocsps

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def gather(self, chains: list[list[x509.Certificate]]) -> RevocationFound:
        """Revocation information for every certificate of each chain but the last (its
        anchor, or the highest certificate known); a certificate shared by several chains is
        looked up once."""
        found = RevocationFound()
        if self.mode == "off":
            return found
        self.reload_supplied()
        found.crls.extend(self.supplied_crls)
        found.ocsps.extend(self.supplied_ocsps)
        pairs: dict[str, tuple[x509.Certificate, x509.Certificate]] = {}
        for chain in chains:
            for cert, issuer in itertools.pairwise(chain):
                pairs.setdefault(fingerprint(cert), (cert, issuer))
        if self.offline:
            for key in pairs:
                found.notes[key] = "offline: supplied CRLs and OCSP responses"
            return found
        results = await asyncio.gather(*(self._one(c, i) for c, i in pairs.values()))
        for (key, (cert, _)), (kind, der, note) in zip(pairs.items(), results, strict=True):
            if kind == "ocsp":
                found.ocsps.append(der)
                found.notes[key] = note
            elif kind == "crl":
                if der not in found.crls:
                    found.crls.append(der)
                found.notes[key] = note
            elif (supplied := self._supplied_for(cert)) is not None:
                # no answer from the certificate's own locations (or it names none): the
                # operator's material decides, in every mode but off
                found.notes[key] = supplied
            elif not _ocsp_urls(cert) and not _crl_urls(cert):
                found.unknown[key] = (
                    f"{rfc4514(cert.subject)}: {note}, and no supplied CRL or OCSP response"
                    " covers it"
                )
                found.no_information.add(key)
            else:
                found.unknown[key] = f"{rfc4514(cert.subject)}: {note}"
        return found

    def _supplied_for(self, cert: x509.Certificate) -> str | None:
        """Words naming the supplied CRL or OCSP response that covers ``cert``, if any."""
        for der in self.supplied_crls:
            try:
                issuer = crl.CertificateList.load(der)["tbs_cert_list"]["issuer"]
            except ValueError:
                continue
            if issuer == cert.issuer:
                return f"CRL of {rfc4514(issuer)} supplied in {self._supplied}"
        for der in self.supplied_ocsps:
            try:
                single = _single_response(ocsp.OCSPResponse.load(der))
            except (ValueError, KeyError, TypeError):
                continue
            if single["cert_id"]["serial_number"].native == cert.serial_number:
                return f"OCSP response supplied in {self._supplied}"
        return None

    async def _one(
        self, cert: x509.Certificate, issuer: x509.Certificate
    ) -> tuple[str, bytes, str]:
        problems = []
        for url in _ocsp_urls(cert):
            try:
                der, how = await self._ocsp(cert, issuer, url)
                return "ocsp", der, f"OCSP {url}, {how}"
            except Exception as exc:  # noqa: BLE001 - any failure: try the next source
                problems.append(f"OCSP {url}: {_why(exc, self.timeout)}")
        for url in _crl_urls(cert):
            try:
                der, how = await self._crl(url)
                return "crl", der, f"CRL {url}, {how}"
            except Exception as exc:  # noqa: BLE001
                problems.append(f"CRL {url}: {_why(exc, self.timeout)}")
        if not problems:
            problems.append("the certificate names no OCSP responder and no CRL")
        log.warning("revocation_unknown", subject=rfc4514(cert.subject), problems=problems)
        return "none", b"", "; ".join(problems)

    def _cached(self, key: str, kind: str) -> bytes | None:
        if not self.cache_enabled:
            return None
        entry = self._cache.get(key)
        if entry is not None and entry.expires <= time.monotonic():
            del self._cache[key]  # expired: dropped, so the cache holds only live answers
            entry = None
        if entry is None:
            return None
        self._count(kind, "cached")
        return entry.der

    def _store(self, key: str, der: bytes, next_update: datetime | None) -> None:
        if not self.cache_enabled:
            return
        lifetime = self.cache_max_seconds
        if next_update is not None:
            lifetime = min(lifetime, (next_update - datetime.now(UTC)).total_seconds())
        if lifetime > 0:
            if len(self._cache) >= CACHE_MAX_ENTRIES and key not in self._cache:
                # bounded: drop the answer that expires first (one per distinct signer seen)
                del self._cache[min(self._cache, key=lambda k: self._cache[k].expires)]
            self._cache[key] = _Entry(der, time.monotonic() + lifetime)

    async def _ocsp(
        self, cert: x509.Certificate, issuer: x509.Certificate, url: str
    ) -> tuple[bytes, str]:
        key = f"ocsp:{url}:{issuer.public_key.sha1.hex()}:{cert.serial_number:x}"
        cached = self._cached(key, "ocsp")
        if cached is not None:
            return cached, "cached"
        request = ocsp.OCSPRequest(
            {
                "tbs_request": {
                    "request_list": [
                        {
                            "req_cert": {
                                "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha1"}),
                                "issuer_name_hash": hashlib.sha1(  # noqa: S324 - RFC 6960 CertID
                                    cert.issuer.dump()
                                ).digest(),
                                "issuer_key_hash": issuer.public_key.sha1,
                                "serial_number": cert.serial_number,
                            }
                        }
                    ]
                }
            }
        )
        try:
            async with self._http().post(
                url,
                data=request.dump(),
                headers={"Content-Type": "application/ocsp-request"},
                allow_redirects=False,
            ) as reply:
                der = await self._body(reply)
            response = ocsp.OCSPResponse.load(der)
            status = response["response_status"].native
            if status != "successful":
                raise RuntimeError(f"the responder answered {status!r}")
            cert_status = _ocsp_status(response)
            next_update = _next_update_ocsp(response)
        except Exception:
            self._count("ocsp", "failed")
            raise
        self._count("ocsp", "fetched")
        self._store(key, der, next_update)
        return der, f"{cert_status}, next update {_fmt(next_update)}"

    async def _body(self, reply: aiohttp.ClientResponse) -> bytes:
        """The reply's body, at most ``max_bytes`` (no redirect is followed)."""
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}")
        limit = self.config.max_bytes
        if (reply.content_length or 0) > limit:
            raise RuntimeError(f"{reply.content_length} bytes, more than the {limit} read")
        parts, size = [], 0
        async for chunk in reply.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise RuntimeError(f"more than the {limit} bytes read")
            parts.append(chunk)
        return b"".join(parts)

    async def _crl(self, url: str) -> tuple[bytes, str]:
        key = f"crl:{url}"
        cached = self._cached(key, "crl")
        if cached is not None:
            return cached, "cached"
        try:
            async with self._http().get(url, allow_redirects=False) as reply:
                der = await self._body(reply)
            if pem.detect(der):
                _, _, der = pem.unarmor(der)
            parsed = crl.CertificateList.load(der)
            next_update = parsed["tbs_cert_list"]["next_update"].native
        except Exception:
            self._count("crl", "failed")
            raise
        self._count("crl", "fetched")
        self._store(key, der, next_update if isinstance(next_update, datetime) else None)
        return der, f"next update {_fmt(next_update)}"


def _ocsp_urls(cert: x509.Certificate) -> list[str]:
    return [url for url in cert.ocsp_urls if url.startswith(("http://", "https://"))]


def _crl_urls(cert: x509.Certificate) -> list[str]:
    urls = []
    for point in cert.crl_distribution_points:
        url = point.url
        if url and url.startswith(("http://", "https://")):
            urls.append(url)
    return urls


def _fmt(moment: object) -> str:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "not given"


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return f"unreachable ({exc})"
    return str(exc) or type(exc).__name__
