"""Certificate helpers: names, the signer's kind, key usage, loading PEM bundles and folders,
and building a chain by issuer name.

    anchors = load_certificates(Path("/etc/lienthong/trust"))   # a bundle file or a folder
    classify(cert, ("CCCD:",), ("MST:",))                        # 1 person, 2 organisation
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from asn1crypto import pem, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature

__all__ = [
    "CERT_SUFFIXES",
    "KEY_USAGES_FOR_SIGNING",
    "build_chain",
    "classify",
    "describe_key_usage",
    "fingerprint",
    "is_self_signed_ca",
    "load_certificates",
    "parse_certificates",
    "rfc4514",
    "to_pem",
    "trusted_chain",
    "uid_of",
]

KEY_USAGES_FOR_SIGNING = ("non_repudiation", "digital_signature")
CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der"}

_SHORT = {
    "common_name": "CN",
    "country_name": "C",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "street_address": "STREET",
    "user_id": "UID",
    "domain_component": "DC",
    "email_address": "E",
    "serial_number": "serialNumber",
    "title": "title",
    "given_name": "GN",
    "surname": "SN",
}
_KU_NAMES = {
    "digital_signature": "digitalSignature",
    "non_repudiation": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
    "encipher_only": "encipherOnly",
    "decipher_only": "decipherOnly",
}


def _escape(value: str) -> str:
    out = "".join(f"\\{ch}" if ch in ',+"\\<>;=' else ch for ch in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


# DER -> its words, per process: the same signers and CAs come back document after document
_WORDS: dict[tuple[str, bytes], str] = {}


def _remembered(kind: str, der: bytes, make: Callable[[], str]) -> str:
    key = (kind, der)
    found = _WORDS.get(key)
    if found is None:
        if len(_WORDS) > 10_000:
            _WORDS.clear()
        found = _WORDS[key] = make()
    return found


def rfc4514(name: x509.Name) -> str:
    """The name as RFC 4514 text (most specific attribute first), e.g. "CN=A,O=B,C=VN"."""
    return _remembered("name", name.dump(), lambda: _rfc4514(name))


def _rfc4514(name: x509.Name) -> str:
    parts = []
    for rdn in reversed(list(name.chosen)):
        attrs = []
        for attr in rdn:
            kind = attr["type"].native
            label = _SHORT.get(kind, attr["type"].dotted if kind == attr["type"].dotted else kind)
            value = attr["value"].native
            attrs.append(f"{label}={_escape(str(value))}")
        parts.append("+".join(attrs))
    return ",".join(parts)


def uid_of(cert: x509.Certificate) -> str:
    """The subject's UID attribute (0.9.2342.19200300.100.1.1), e.g. "CCCD:001085012345"."""
    return _remembered("uid", cert.subject.dump(), lambda: _uid_of(cert))


def _uid_of(cert: x509.Certificate) -> str:
    value = cert.subject.native.get("user_id", "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def classify(
    cert: x509.Certificate, person_prefixes: tuple[str, ...], organisation_prefixes: tuple[str, ...]
) -> int:
    """lienthong.common.v1.SignerKind from the UID prefix: 1 person, 2 organisation, 0 unknown."""
    uid = uid_of(cert).strip().upper()
    if any(uid.startswith(prefix.upper()) for prefix in person_prefixes if prefix):
        return 1
    if any(uid.startswith(prefix.upper()) for prefix in organisation_prefixes if prefix):
        return 2
    return 0


def describe_key_usage(cert: x509.Certificate) -> str:
    return _remembered("key-usage", cert.dump(), lambda: _describe_key_usage(cert))


def _describe_key_usage(cert: x509.Certificate) -> str:
    usage = cert.key_usage_value
    if usage is None:
        return "(no key usage extension)"
    names = sorted(_KU_NAMES.get(item, item) for item in usage.native)
    return "{" + ", ".join(names) + "}"


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.dump()).hexdigest()


def is_self_signed_ca(cert: x509.Certificate) -> bool:
    return bool(cert.ca) and cert.self_signed in {"maybe", "yes"}


def to_pem(cert: x509.Certificate) -> str:
    return str(pem.armor("CERTIFICATE", cert.dump()).decode())


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, or the one DER certificate (ValueError otherwise)."""
    if pem.detect(data):
        certs = []
        for kind, _, der in pem.unarmor(data, multiple=True):
            if kind == "CERTIFICATE":
                cert = x509.Certificate.load(der)
                cert.native  # noqa: B018 - parse fully now
                certs.append(cert)
        return certs
    cert = x509.Certificate.load(data)
    cert.native  # noqa: B018
    return [cert]


def load_certificates(path: Path) -> list[tuple[x509.Certificate, str]]:
    """(certificate, source) from a bundle file or every certificate file of a folder."""
    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in CERT_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    found = []
    for item in files:
        for cert in parse_certificates(item.read_bytes()):
            found.append((cert, f"config:{item}"))
    return found


def build_chain(
    cert: x509.Certificate, pool: list[x509.Certificate], *, limit: int = 8
) -> list[x509.Certificate]:
    """cert, its issuer, ... as far as the pool knows (stops at a self-signed certificate)."""
    chain = [cert]
    current = cert
    while len(chain) < limit and current.self_signed == "no":
        issuer = next(
            (
                c
                for c in pool
                if c.subject == current.issuer
                and (
                    current.authority_key_identifier is None
                    or c.key_identifier is None
                    or c.key_identifier == current.authority_key_identifier
                )
            ),
            None,
        )
        if issuer is None or issuer in chain:
            break
        chain.append(issuer)
        current = issuer
    return chain


# (child SHA-256, issuer SHA-256) -> whether the issuer's key signed the child (bounded)
_ISSUED: dict[tuple[str, str], bool] = {}


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = (fingerprint(child), fingerprint(issuer))
    known = _ISSUED.get(key)
    if known is None:
        try:
            cx509.load_der_x509_certificate(child.dump()).verify_directly_issued_by(
                cx509.load_der_x509_certificate(issuer.dump())
            )
            known = True
        except (ValueError, TypeError, InvalidSignature):
            known = False
        if len(_ISSUED) > 10_000:
            _ISSUED.clear()
        _ISSUED[key] = known
    return known


def trusted_chain(
    cert: x509.Certificate,
    pool: list[x509.Certificate],
    anchors: list[x509.Certificate],
    *,
    limit: int = 8,
) -> list[x509.Certificate] | None:
    """cert, its issuer, ... ending at one of ``anchors``, each link's signature verified by its
    issuer's key; None when there is no such chain. Only such a chain's certificates may have
    their revocation URLs fetched: a self-made chain names whatever URL its maker wants."""
    anchor_keys = {fingerprint(a) for a in anchors}
    candidates = [*pool, *anchors]

    def walk(chain: list[x509.Certificate]) -> list[x509.Certificate] | None:
        current = chain[-1]
        if fingerprint(current) in anchor_keys:
            return chain
        if len(chain) >= limit:
            return None
        for issuer in candidates:
            if issuer.subject != current.issuer or any(issuer == c for c in chain):
                continue
            if _issued_by(current, issuer) and (found := walk([*chain, issuer])) is not None:
                return found
        return None

    return walk([cert])
