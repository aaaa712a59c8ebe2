"""Who is calling: the unit named by the client certificate's URI SAN, as for gRPC.

With TLS on, the certificate reaches the app through the ASGI TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``, filled by http_server.py); without TLS,
in development only, the ``x-lienthong-identity`` header (or the older ``x-lienthong-unit``)
names the caller. Only agency units call the gateway: it acts for them, never for services or
operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509

from lienthong_kit.authz import IDENTITY_HEADER, Identity, Kind, identity_from_header
from lienthong_kit.authz import identity_from_uri as _from_uri

__all__ = ["UNIT_HEADER", "CallerError", "caller_from_scope"]

UNIT_HEADER = "x-lienthong-unit"


class CallerError(Exception):
    """The caller cannot be identified (401) or is not a unit (403)."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


def _from_certificate(pem: str, trust_domain: str) -> Identity:
    cert = x509.load_pem_x509_certificate(pem.encode())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    for uri in uris:
        found = _from_uri(uri, trust_domain)
        if found is not None:
            return found
    raise CallerError(
        401,
        "NO_IDENTITY",
        f"the client certificate names no identity in the trust domain {trust_domain}"
        f" (URI SANs: {', '.join(uris) or 'none'}); see docs/security.md",
    )


def _tls(scope: Mapping[str, Any]) -> Mapping[str, Any] | None:
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls")
    return tls if isinstance(tls, Mapping) else None


def caller_from_scope(
    scope: Mapping[str, Any], headers: Mapping[str, str], *, trust_domain: str, dev_auth: bool
) -> Identity:
    """The unit calling, or CallerError."""
    tls = _tls(scope)
    identity: Identity | None = None
    if tls is not None:
        chain = tls.get("client_cert_chain") or []
        if not chain:
            raise CallerError(
                401, "NO_CERTIFICATE", "present a client certificate (mutual TLS) naming a unit"
            )
        identity = _from_certificate(str(chain[0]), trust_domain)
    elif dev_auth:
        if value := headers.get(IDENTITY_HEADER):
            identity = identity_from_header(value)
        elif value := headers.get(UNIT_HEADER):
            identity = Identity(Kind.UNIT, value.strip())
        if identity is None or not identity.name:
            raise CallerError(
                401,
                "NO_IDENTITY",
                f"development mode: name the caller with {IDENTITY_HEADER}: unit/<code>",
            )
    else:
        raise CallerError(401, "NO_IDENTITY", "the gateway accepts only mutual-TLS callers")
    if identity.kind is not Kind.UNIT:
        raise CallerError(
            403, "NOT_A_UNIT", f"only agency units call the gateway; the caller is {identity}"
        )
    return identity
