"""Certificates a service holds or is shown: identities from client certificates, the client
revocation list, files that reload when they change, and days to expiry.

    peer = PeerCertificates(trust_domain="lienthong.phutho.gov.vn", crl_path=Path("c.crl"))
    identity = peer.identify(pem)     # Identity, or raises Unauthenticated saying why
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509

from lienthong_kit.authz import Identity, identity_from_uri
from lienthong_kit.errors import Unauthenticated

__all__ = ["PeerCertificates", "WatchedFile", "days_to_expiry", "load_pem_certificates"]


T = TypeVar("T")


class WatchedFile(Generic[T]):
    """A file's parsed content, parsed again when the file's modification time changes."""

    def __init__(self, path: Path, parse: Callable[[bytes], T]) -> None:
        self.path = path
        self._parse = parse
        self._stamp: tuple[int, int] | None = None
        self._value: T | None = None

    def changed(self) -> bool:
        stat = self.path.stat()
        return (stat.st_mtime_ns, stat.st_size) != self._stamp

    def get(self) -> T:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._value is None or stamp != self._stamp:
            self._value = self._parse(self.path.read_bytes())
            self._stamp = stamp
        return self._value


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def days_to_expiry(certificate: x509.Certificate, now: datetime | None = None) -> float:
    moment = now or datetime.now(UTC)
    return (certificate.not_valid_after_utc - moment).total_seconds() / 86400


@dataclass(frozen=True)
class _Revoked:
    serials: frozenset[tuple[str, int]]  # (issuer, serial)


def _parse_crls(data: bytes) -> _Revoked:
    serials: set[tuple[str, int]] = set()
    for block in data.split(b"-----END X509 CRL-----"):
        if b"-----BEGIN X509 CRL-----" not in block:
            continue
        crl = x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n")
        issuer = crl.issuer.rfc4514_string()
        serials.update((issuer, revoked.serial_number) for revoked in crl)
    return _Revoked(frozenset(serials))


class PeerCertificates:
    """Turns a client's certificate (PEM, as gRPC's auth context gives it) into an identity,
    refusing revoked certificates listed in the operator's CRL file (re-read on change)."""

    def __init__(self, *, trust_domain: str, crl_path: Path | None = None) -> None:
        self.trust_domain = trust_domain
        self._crl = WatchedFile(crl_path, _parse_crls) if crl_path else None

    def identify(self, pem: bytes) -> Identity:
        certificate = _certificate(pem)
        if self._crl is not None:
            revoked = self._crl.get()
            key = (certificate.issuer.rfc4514_string(), certificate.serial_number)
            if key in revoked.serials:
                raise Unauthenticated(
                    f"the client certificate (serial {certificate.serial_number:x}) is revoked",
                    reason="CERTIFICATE_REVOKED",
                )
        identity = _identity(certificate, self.trust_domain)
        if identity is None:
            raise Unauthenticated(
                "the client certificate names no lienthong identity: it needs a URI SAN"
                f" spiffe://{self.trust_domain}/unit|service|operator/... (docs/security.md)",
                reason="NO_IDENTITY",
            )
        return identity


@functools.lru_cache(maxsize=4096)
def _certificate(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


@functools.lru_cache(maxsize=4096)
def _identity(certificate: x509.Certificate, trust_domain: str) -> Identity | None:
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    found = {
        identity
        for uri in sans.value.get_values_for_type(x509.UniformResourceIdentifier)
        if (identity := identity_from_uri(uri, trust_domain)) is not None
    }
    # two different identities in one certificate would make every decision ambiguous
    return found.pop() if len(found) == 1 else None
