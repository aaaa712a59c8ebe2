"""signature-service's settings (docs/configuration.md lists them with the kit's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lienthong_kit.settings import KitSettings, setting
from signature_service.policy import DEFAULT_RULES, parse_rules
from signature_service.revocation import MODES

__all__ = ["Settings"]


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    signature_trust_anchors: Path | None = setting(
        "LIENTHONG_SIGNATURE_TRUST_ANCHORS",
        None,
        doc="trust anchors: a PEM bundle or a folder of .pem/.crt/.cer/.der files (re-read"
        " when changed); non-self-signed CA certificates in it count as intermediates",
    )
    signature_intermediates: Path | None = setting(
        "LIENTHONG_SIGNATURE_INTERMEDIATES",
        None,
        doc="intermediate CA certificates for chain building: a PEM bundle or a folder",
    )
    signature_trust_reload_seconds: float = setting(
        "LIENTHONG_SIGNATURE_TRUST_RELOAD_SECONDS",
        30.0,
        doc="how often the trust files and the operators' anchors are re-read",
    )
    signature_revocation_mode: str = setting(
        "LIENTHONG_SIGNATURE_REVOCATION_MODE",
        "require",
        doc="require (no revocation status: invalid), soft-fail (unknown status passes) or off",
    )
    signature_revocation_timeout_seconds: float = setting(
        "LIENTHONG_SIGNATURE_REVOCATION_TIMEOUT_SECONDS",
        5.0,
        doc="HTTP timeout of one OCSP or CRL fetch",
    )
    signature_revocation_offline: bool = setting(
        "LIENTHONG_SIGNATURE_REVOCATION_OFFLINE",
        False,
        doc="fetch nothing: use only the CRLs/OCSP responses in LIENTHONG_SIGNATURE_REVOCATION_DIR",
    )
    signature_revocation_dir: Path | None = setting(
        "LIENTHONG_SIGNATURE_REVOCATION_DIR",
        None,
        doc="folder of supplied CRLs (*.crl) and OCSP responses (*.ocsp), DER or PEM",
    )
    signature_revocation_cache: bool = setting(
        "LIENTHONG_SIGNATURE_REVOCATION_CACHE",
        True,
        doc="cache CRLs and OCSP responses until their next update",
    )
    signature_revocation_cache_max_seconds: float = setting(
        "LIENTHONG_SIGNATURE_REVOCATION_CACHE_MAX_SECONDS",
        86400.0,
        doc="longest a cached CRL/OCSP response is used (also when it names no next update)",
    )
    signature_revocation_max_bytes: int = setting(
        "LIENTHONG_SIGNATURE_REVOCATION_MAX_BYTES",
        8 * 1024 * 1024,
        doc="largest CRL or OCSP response read (a larger one leaves the status unknown)",
    )
    signature_person_uid_prefixes: tuple[str, ...] = setting(
        "LIENTHONG_SIGNATURE_PERSON_UID_PREFIXES",
        ("CCCD:", "CMND:", "HC:"),
        doc="subject UID prefixes of a person's certificate",
    )
    signature_organisation_uid_prefixes: tuple[str, ...] = setting(
        "LIENTHONG_SIGNATURE_ORGANISATION_UID_PREFIXES",
        ("MST:", "MNS:"),
        doc="subject UID prefixes of an organisation's certificate",
    )
    signature_policy: tuple[str, ...] = setting(
        "LIENTHONG_SIGNATURE_POLICY",
        DEFAULT_RULES,
        doc="required signatures: <types>@<direction>=<requirement> rules, first match wins"
        " (docs/signature.md)",
    )
    signature_accept_unsigned: bool = setting(
        "LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED",
        False,
        doc="DEVELOPMENT ONLY: accept a document that carries no signature at all (signed ones"
        " are still fully verified)",
    )
    signature_document_service: str = setting(
        "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE",
        "127.0.0.1:50051",
        doc="document-service's gRPC address, to fetch attachment bytes",
    )
    signature_document_service_ca: Path | None = setting(
        "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA",
        None,
        doc="CA of document-service's server certificate: the fetch goes over mTLS with the"
        " client certificate below; plaintext when unset",
    )
    signature_client_cert: Path | None = setting(
        "LIENTHONG_SIGNATURE_CLIENT_CERT",
        None,
        doc="signature-service's client certificate for the fetch (URI SAN"
        " spiffe://<trust domain>/service/signature-service, client authentication)",
    )
    signature_client_key: Path | None = setting(
        "LIENTHONG_SIGNATURE_CLIENT_KEY", None, doc="the key of LIENTHONG_SIGNATURE_CLIENT_CERT"
    )
    signature_fetch_timeout_seconds: float = setting(
        "LIENTHONG_SIGNATURE_FETCH_TIMEOUT_SECONDS",
        30.0,
        doc="how long fetching one attachment may take (retried while document-service is down)",
    )
    signature_workers: int = setting(
        "LIENTHONG_SIGNATURE_WORKERS",
        2,
        doc="validation worker processes; 0 validates in a thread of the service process",
    )
    signature_validation_timeout_seconds: float = setting(
        "LIENTHONG_SIGNATURE_VALIDATION_TIMEOUT_SECONDS",
        60.0,
        doc="longest one document's validation may take before it is rejected",
    )
    signature_max_file_bytes: int = setting(
        "LIENTHONG_SIGNATURE_MAX_FILE_BYTES",
        20 * 1024 * 1024,
        doc="largest file verified (VerifyDocument and attachments)",
    )
    signature_max_document_bytes: int = setting(
        "LIENTHONG_SIGNATURE_MAX_DOCUMENT_BYTES",
        100 * 1024 * 1024,
        doc="largest total of one document's files verified (a larger document is rejected)",
    )
    signature_memory_per_worker_bytes: int = setting(
        "LIENTHONG_SIGNATURE_MEMORY_PER_WORKER_BYTES",
        1024 * 1024 * 1024,
        doc="address-space cap of each validation worker process (RLIMIT_AS; 0: none): a file"
        " that needs more is rejected, the worker and the service live on",
    )
    signature_max_attempts: int = setting(
        "LIENTHONG_SIGNATURE_MAX_ATTEMPTS",
        3,
        doc="times a document's verification may start without finishing (the service stopped"
        " meanwhile) before it is rejected; counted in the store, across restarts",
    )
    signature_precheck_workers: int = setting(
        "LIENTHONG_SIGNATURE_PRECHECK_WORKERS",
        1,
        doc="worker processes of their own for VerifyDocument and ValidateCertificate; 0: one"
        " thread of the service process",
    )
    signature_precheck_queue: int = setting(
        "LIENTHONG_SIGNATURE_PRECHECK_QUEUE",
        4,
        doc="pre-checks that may wait for a pre-check worker; beyond, RESOURCE_EXHAUSTED",
    )
    signature_spool_dir: Path | None = setting(
        "LIENTHONG_SIGNATURE_SPOOL_DIR",
        None,
        doc="folder for the files being verified (the system's temporary folder when unset)",
    )

    def validate(self) -> list[str]:
        problems = super().validate()
        if self.signature_revocation_mode not in MODES:
            problems.append(
                f"LIENTHONG_SIGNATURE_REVOCATION_MODE: {self.signature_revocation_mode!r} is not"
                f" one of {', '.join(MODES)}"
            )
        _, rule_problems = parse_rules(self.signature_policy)
        problems += [f"LIENTHONG_SIGNATURE_POLICY: {p}" for p in rule_problems]
        for name in ("signature_trust_anchors", "signature_intermediates"):
            path = getattr(self, name)
            if path is not None and not path.exists():
                problems.append(f"LIENTHONG_{name.upper()}: no such file or folder: {path}")
        if self.signature_revocation_offline and self.signature_revocation_dir is None:
            problems.append(
                "LIENTHONG_SIGNATURE_REVOCATION_OFFLINE needs LIENTHONG_SIGNATURE_REVOCATION_DIR"
            )
        for name in (
            "signature_workers",
            "signature_memory_per_worker_bytes",
            "signature_precheck_workers",
            "signature_precheck_queue",
        ):
            if getattr(self, name) < 0:
                problems.append(f"LIENTHONG_{name.upper()}: must be 0 or more")
        if self.signature_max_attempts < 1:
            problems.append("LIENTHONG_SIGNATURE_MAX_ATTEMPTS: must be 1 or more")
        if self.signature_spool_dir is not None and not self.signature_spool_dir.is_dir():
            problems.append(
                f"LIENTHONG_SIGNATURE_SPOOL_DIR: no such folder: {self.signature_spool_dir}"
            )
        for name in (
            "signature_trust_reload_seconds",
            "signature_revocation_timeout_seconds",
            "signature_fetch_timeout_seconds",
            "signature_validation_timeout_seconds",
            "signature_max_file_bytes",
            "signature_max_document_bytes",
            "signature_revocation_max_bytes",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"LIENTHONG_{name.upper()}: must be greater than 0")
        client = (
            self.signature_document_service_ca,
            self.signature_client_cert,
            self.signature_client_key,
        )
        if any(value is not None for value in client) and None in client:
            problems.append(
                "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA, LIENTHONG_SIGNATURE_CLIENT_CERT and"
                " LIENTHONG_SIGNATURE_CLIENT_KEY must be set together (the fetch's mTLS)"
            )
        for name in (
            "signature_document_service_ca",
            "signature_client_cert",
            "signature_client_key",
        ):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                problems.append(f"LIENTHONG_{name.upper()}: no such file: {path}")
        if self.tls_client_ca is not None and self.signature_document_service_ca is None:
            # document-service of the same deployment refuses a plaintext fetch: every
            # document with an attachment would be dead-lettered
            problems.append(
                "mTLS is on (LIENTHONG_TLS_CLIENT_CA) but the attachment fetch is plaintext: set"
                " LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA, LIENTHONG_SIGNATURE_CLIENT_CERT and"
                " LIENTHONG_SIGNATURE_CLIENT_KEY"
            )
        return problems
